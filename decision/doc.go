// Package decision holds routelab's value types: what one routing decision
// is made of, from the request's Features and the candidate Arms, through
// the Decision (choice and propensities) and the Outcome of acting on it,
// to the Reward that scores the outcome and the Record that is logged.
//
// It is a leaf: it imports nothing of routelab, so the policies (package
// policy), the decision core (package route), the log (package decisionlog)
// and every caller share one definition of each type without importing one
// another. The types are plain structs whose zero values are documented and
// valid.
package decision
