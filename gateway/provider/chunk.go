package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// streamChunk is what Stream needs from one chat.completion.chunk.
type streamChunk struct {
	ID, Model string
	Created   int64
	// Choices: the chunk has a non-empty choices array.
	Choices bool
	Usage   *Usage
	// Error: the chunk has a non-null error member.
	Error bool
}

// chunkJSON is the chunk as encoding/json reads it: parseChunk's reference.
type chunkJSON struct {
	ID      string            `json:"id"`
	Model   string            `json:"model"`
	Created int64             `json:"created"`
	Choices []json.RawMessage `json:"choices"`
	Usage   *Usage            `json:"usage"`
	Error   json.RawMessage   `json:"error"`
}

// parseChunkJSON decodes data with encoding/json.
func parseChunkJSON(data []byte) (streamChunk, error) {
	var v chunkJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return streamChunk{}, err
	}
	return streamChunk{ID: v.ID, Model: v.Model, Created: v.Created, Choices: len(v.Choices) > 0,
		Usage: v.Usage, Error: len(v.Error) > 0 && !isNull(v.Error)}, nil
}

// The members parseChunk reads, in chunkKeys order.
const (
	ckID = iota
	ckModel
	ckCreated
	ckChoices
	ckUsage
	ckError
	nChunkKeys
)

var chunkKeys = [nChunkKeys][]byte{[]byte(`"id"`), []byte(`"model"`), []byte(`"created"`), []byte(`"choices"`), []byte(`"usage"`), []byte(`"error"`)}

var errChunkSlow = errors.New("chunk needs encoding/json")

// parseChunk reads one stream chunk exactly as parseChunkJSON does (same
// fields, an error exactly when it errs), without decoding what Stream
// does not use: one scan finds the members, and the id, model and created
// values are decoded only when first is set (the first content chunk is
// the only one whose are kept). It handles the chunks providers send —
// an object whose member names are spelt as documented, each once — and
// hands anything else (a name differing only in case, which
// encoding/json also matches, a repeated member, a value of another type)
// to parseChunkJSON, so the two never disagree (FuzzParseChunk).
func parseChunk(data []byte, first bool) (streamChunk, error) {
	c, err := parseChunkFast(data, first)
	if err == errChunkSlow {
		c, err = parseChunkJSON(data)
		if !first {
			c.ID, c.Model, c.Created = "", "", 0
		}
	}
	return c, err
}

func parseChunkFast(data []byte, first bool) (streamChunk, error) {
	var c streamChunk
	if !json.Valid(data) {
		return c, errChunkSlow // let encoding/json word the syntax error
	}
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return c, errChunkSlow
	}
	var seen [nChunkKeys]bool
	for i = skipWS(data, i+1); i < len(data) && data[i] == '"'; {
		ke := skipString(data, i)
		key := data[i:ke]
		vs := skipWS(data, skipWS(data, ke)+1) // past ':'
		ve := skipValue(data, vs)
		val := data[vs:ve]
		k := -1
		for j := range chunkKeys {
			if bytes.Equal(key, chunkKeys[j]) {
				k = j
				break
			}
			if bytes.EqualFold(key, chunkKeys[j]) || !plainKey(key) {
				return c, errChunkSlow
			}
		}
		if k >= 0 {
			if seen[k] {
				return c, errChunkSlow
			}
			seen[k] = true
			if err := c.set(k, val, first); err != nil {
				return c, err
			}
		}
		i = skipWS(data, ve)
		if i < len(data) && data[i] == ',' {
			i = skipWS(data, i+1)
		}
	}
	return c, nil
}

// set reads member k's value val (valid JSON) into c.
func (c *streamChunk) set(k int, val []byte, first bool) error {
	null := string(val) == "null"
	switch k {
	case ckID, ckModel:
		if null {
			return nil
		}
		if val[0] != '"' {
			return errChunkSlow
		}
		if !first {
			return nil
		}
		s, ok := plainString(val)
		if !ok {
			return errChunkSlow
		}
		if k == ckID {
			c.ID = s
		} else {
			c.Model = s
		}
	case ckCreated:
		if null {
			return nil
		}
		n, err := strconv.ParseInt(string(val), 10, 64)
		if err != nil {
			return errChunkSlow
		}
		if first {
			c.Created = n
		}
	case ckChoices:
		if null {
			return nil
		}
		if val[0] != '[' {
			return errChunkSlow
		}
		c.Choices = val[skipWS(val, 1)] != ']'
	case ckUsage:
		if null {
			return nil
		}
		if val[0] != '{' {
			return errChunkSlow
		}
		var u Usage
		if err := json.Unmarshal(val, &u); err != nil {
			return errChunkSlow
		}
		c.Usage = &u
	case ckError:
		c.Error = !null
	}
	return nil
}

// plainKey reports whether the quoted member name q is ASCII without
// escapes (encoding/json folds some non-ASCII letters to ASCII ones).
func plainKey(q []byte) bool {
	for _, b := range q {
		if b == '\\' || b >= 0x80 {
			return false
		}
	}
	return true
}

// plainString returns the quoted JSON string q without its quotes when it
// has no escape and only ASCII that needs no validation.
func plainString(q []byte) (string, bool) {
	s := q[1 : len(q)-1]
	for _, b := range s {
		if b == '\\' || b < 0x20 || b >= 0x80 {
			return "", false
		}
	}
	return string(s), true
}
