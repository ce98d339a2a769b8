package grpcapi

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/routelab/routelab/gateway/grpcapi/routelabv1"
	"github.com/routelab/routelab/gateway/provider"
)

func TestEncodeRequestParses(t *testing.T) {
	n, temp := int32(7), 0.3
	body, err := encodeRequest(&routelabv1.ChatRequest{Model: "auto", MaxTokens: &n, Temperature: &temp, Stop: []string{"\n"},
		Metadata: map[string]string{"task": "code"}, IncludeUsage: true,
		Messages: []*routelabv1.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: `say "hi"`}}}, true)
	require.NoError(t, err)
	r, err := provider.ParseRequest(body)
	require.NoError(t, err, "%s", body)
	assert.Equal(t, "auto", r.Model)
	assert.Equal(t, 7, r.MaxTokens)
	assert.Equal(t, 0.3, *r.Temperature)
	assert.Nil(t, r.TopP)
	assert.Equal(t, []string{"\n"}, r.Stop)
	assert.Equal(t, "code", r.Metadata["task"])
	assert.True(t, r.Stream)
	assert.True(t, r.IncludeUsage)
	require.Len(t, r.Messages, 2)
	assert.Equal(t, `say "hi"`, r.Messages[1].Text())

	// No messages is the parser's error, naming the field.
	body, err = encodeRequest(&routelabv1.ChatRequest{Model: "auto"}, false)
	require.NoError(t, err)
	_, err = provider.ParseRequest(body)
	var re *provider.RequestError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "messages", re.Param)
}

func TestDecodeChunkAndCompletion(t *testing.T) {
	c, err := decodeChunk([]byte(`{"id":"x","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"hé"},"finish_reason":null}]}`))
	require.NoError(t, err)
	assert.Equal(t, "x", c.Id)
	assert.Equal(t, int64(5), c.Created)
	require.Len(t, c.Choices, 1)
	assert.Equal(t, "hé", c.Choices[0].GetDelta().GetContent())
	assert.Empty(t, c.Choices[0].FinishReason)
	assert.Nil(t, c.Usage)

	r, err := decodeCompletion([]byte(`{"id":"y","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`))
	require.NoError(t, err)
	assert.Equal(t, "tool_calls", r.Choices[0].FinishReason)
	assert.Empty(t, r.Choices[0].GetMessage().GetContent())
	assert.Equal(t, int32(7), r.GetUsage().GetTotalTokens())

	_, err = decodeChunk([]byte(`[1,2]`))
	assert.Error(t, err)
}

// FuzzDecode: the chunk and completion decoders never panic, and what
// they accept gRPC can send (proto3 strings must be valid UTF-8).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"x","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"choices":[{"message":{"content":null}}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"choices":null,"usage":null}`))
	f.Add([]byte("{\"id\":\"\xff\xfe\",\"choices\":[{\"delta\":{\"content\":\"\\ud800\"}}]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := decodeChunk(b); err == nil {
			_, err := proto.Marshal(c)
			require.NoError(t, err)
		}
		if r, err := decodeCompletion(b); err == nil {
			_, err := proto.Marshal(r)
			require.NoError(t, err)
		}
	})
}
