// Package mask finds secrets and personal data in free text and replaces
// them with "[REDACTED:kind]": API keys and tokens (GitHub ghp_…, OpenAI
// and Anthropic sk-…, Slack xox…), "key=value" credentials (api_key=,
// token=, password=, ssn=, …), AWS access key ids, cloud credentials (AWS
// secret keys, Google API keys, Azure account keys, PEM private keys),
// payment card numbers (checked with Luhn), e-mail addresses and phone
// numbers. The gateway applies it to tags and metadata before they are
// logged and, optionally, to prompts before they leave for an upstream.
//
// It imports nothing of routelab. A Masker is immutable and safe for
// concurrent use; String allocates only when it replaces something.
package mask
