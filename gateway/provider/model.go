package provider

import (
	"bytes"
	"encoding/json"
	"errors"
)

var modelKey = []byte(`"model"`)

// AppendWithModel appends to dst the JSON object body with the value of
// its top-level "model" member replaced by quoted, a JSON string (see
// QuoteJSON): the gateway answers with its catalogue id rather than the
// upstream's model name. Only the member's value is rewritten; the rest of
// the body is kept byte for byte (dst must not overlap body). A body
// without a top-level "model" member is appended unchanged; so is a body
// that is not a valid JSON object, with an error saying so.
func AppendWithModel(dst, body, quoted []byte) ([]byte, error) {
	if !json.Valid(body) {
		return append(dst, body...), errors.New("answer is not valid JSON")
	}
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return append(dst, body...), errors.New("answer is not a JSON object")
	}
	// body is valid JSON: members are `"key" : value` separated by commas.
	for i = skipWS(body, i+1); i < len(body) && body[i] == '"'; {
		ke := skipString(body, i)
		key := body[i:ke]
		vs := skipWS(body, skipWS(body, ke)+1) // past ':'
		ve := skipValue(body, vs)
		if bytes.Equal(key, modelKey) {
			dst = append(dst, body[:vs]...)
			dst = append(dst, quoted...)
			return append(dst, body[ve:]...), nil
		}
		i = skipWS(body, ve)
		if i < len(body) && body[i] == ',' {
			i = skipWS(body, i+1)
		}
	}
	return append(dst, body...), nil
}
