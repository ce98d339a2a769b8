package gateway

import "sync/atomic"

// policyHdr caches the X-Routelab-Policy header value of the last policy
// seen, so that a request does not allocate it: the policy changes only
// on a swap. Header value slices are never modified once set.
type policyHdr struct{ last atomic.Pointer[[]string] }

// policyHeader returns name as a header value, shared between requests.
func (s *Server) policyHeader(name string) []string {
	if p := s.policyHdr.last.Load(); p != nil && (*p)[0] == name {
		return *p
	}
	v := []string{name}
	s.policyHdr.last.Store(&v)
	return v
}
