// Package provider holds the gateway's upstream adapters behind one small
// interface: Complete for a plain call, Stream for a streamed one, both in
// OpenAI's chat-completion format.
//
//	p, err := provider.NewOpenAI(provider.OpenAIOpts{Name: "openai", BaseURL: "https://api.openai.com/v1", APIKey: key})
//	req, err := provider.ParseRequest(body)   // the client's JSON, validated
//	res, err := p.Complete(ctx, &provider.Call{Req: req, Model: "gpt-4o-mini"})
//
// OpenAI talks to any OpenAI-compatible API and forwards the request as
// sent but for the model; Anthropic translates to and from the Messages
// API (text content only), streams included; Sim is a self-contained
// simulated upstream (real sleeps, token streaming, failures, 429s, a
// judged quality per task). Failures are *Error values classified for the
// gateway's fallback logic (status, HTTP code, retryable, client fault).
//
// Answers name the upstream's model; the gateway renames them to its
// catalogue id with AppendWithModel, which rewrites only the top-level
// "model" member of a body or stream chunk and copies the rest byte for
// byte.
package provider
