package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/routelab/routelab/route"
)

// FeedbackRequest is the body of POST /v1/feedback: a request id and
// exactly one of quality (in [0,1]), thumbs ("up"/"down" or true/false) or
// reward (in [0,1], used as is).
type FeedbackRequest struct {
	RequestID string          `json:"request_id"`
	Quality   *float64        `json:"quality"`
	Thumbs    json.RawMessage `json:"thumbs"`
	Reward    *float64        `json:"reward"`
	// Source says who rated ("user", "judge", ...); default "user".
	Source string `json:"source"`
}

// FeedbackResponse answers POST /v1/feedback.
type FeedbackResponse struct {
	RequestID string  `json:"request_id"`
	Model     string  `json:"model"`
	Reward    float64 `json:"reward"`
	Learned   bool    `json:"learned"`
}

func parseThumbs(raw json.RawMessage) (float64, error) {
	raw = bytes.TrimSpace(raw)
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		if b {
			return 1, nil
		}
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "up", "+1", "1":
			return 1, nil
		case "down", "-1", "0":
			return 0, nil
		}
	}
	return 0, fmt.Errorf("thumbs: %s is not \"up\", \"down\", true or false", raw)
}

func unit(name string, v float64) error {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("%s: %v outside [0,1]", name, v)
	}
	return nil
}

// handleFeedback parses and validates a rating, hands it to the decision
// core (which computes the reward, updates the model's quality profile and,
// when the request's policy update was deferred for it, lets the deciding
// policy learn), writes it to the decision log, which joins it by request
// id, and answers.
func (s *Server) handleFeedback(c *gin.Context) {
	w := c.Writer
	cl, aerr := s.keys.authenticate(c.Request)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	c.Set(ctxCaller, cl)
	if !s.requireScope(c, cl, scopeFeedback, "POST /v1/feedback") {
		return
	}
	if ok, _ := s.takeKey(c.Request.Context(), cl); !ok {
		// Feedback shares the key's token bucket with chat completions.
		s.m.feedback.WithLabelValues("rate_limited").Inc()
		w.Header().Set("Retry-After", "1")
		writeAPIError(w, apiErr(http.StatusTooManyRequests, typeRateLimit, "rate_limit_exceeded", "rate limit of this API key exceeded"))
		return
	}
	bad := func(param, msg string) {
		s.m.feedback.WithLabelValues("invalid").Inc()
		writeAPIError(w, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_feedback", msg).withParam(param))
	}
	var fr FeedbackRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr); err != nil {
		bad("", "invalid feedback JSON: "+err.Error())
		return
	}
	if fr.RequestID == "" {
		bad("request_id", "request_id: required")
		return
	}
	n := 0
	var quality *float64
	if fr.Quality != nil {
		n++
		if err := unit("quality", *fr.Quality); err != nil {
			bad("quality", err.Error())
			return
		}
		quality = fr.Quality
	}
	if len(fr.Thumbs) > 0 && string(fr.Thumbs) != "null" {
		n++
		q, err := parseThumbs(fr.Thumbs)
		if err != nil {
			bad("thumbs", err.Error())
			return
		}
		quality = &q
	}
	if fr.Reward != nil {
		n++
		if err := unit("reward", *fr.Reward); err != nil {
			bad("reward", err.Error())
			return
		}
	}
	if n != 1 {
		bad("", "give exactly one of quality, thumbs or reward")
		return
	}
	if fr.Source == "" {
		fr.Source = "user"
	}
	// Only the credential that made the request may rate it; an id issued
	// to another key answers exactly as an unknown one (no oracle).
	owned := s.ids.owns(fr.RequestID, owner(cl, c.Request))
	var res route.FeedbackResult
	var err error
	if owned {
		res, err = s.core.Feedback(fr.RequestID, quality, fr.Reward)
	}
	if !owned || errors.Is(err, route.ErrUnknownRequest) {
		s.m.feedback.WithLabelValues("unknown").Inc()
		writeAPIError(w, apiErr(http.StatusNotFound, typeNotFound, "unknown_request_id",
			fmt.Sprintf("request %q is unknown, older than %v, already rated, or not made with this API key", clip(fr.RequestID), s.cfg.Feedback.TTL)).withParam("request_id"))
		return
	}
	if err != nil {
		s.log.Warn("delayed reward update failed", "request_id", fr.RequestID, "err", err)
	}
	if s.feedback != nil {
		if err := s.feedback.LogFeedback(fr.RequestID, s.now(), fr.Reward, quality, fr.Source); err != nil {
			s.log.Warn("feedback not logged", "request_id", fr.RequestID, "err", err)
		}
	}
	s.m.feedback.WithLabelValues("applied").Inc()
	c.JSON(http.StatusOK, FeedbackResponse{RequestID: fr.RequestID, Model: res.Model, Reward: res.Reward, Learned: res.Learned})
}
