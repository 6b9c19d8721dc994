package jit

import "time"

// Clock tells the time. Expiry is decided against a Clock, never by
// sleeping, so tests move time instead of waiting for it.
type Clock interface {
	Now() time.Time
}

// NewClock returns the system clock.
func NewClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// GrantStatus is a granted port's status, in Defender's words.
type GrantStatus string

const (
	GrantInitiated GrantStatus = "Initiated"
	GrantExpired   GrantStatus = "Expired"
	// GrantRevoked is set by the provider when a request is destroyed
	// before it expires; ExpiryStatus never returns it.
	GrantRevoked GrantStatus = "Revoked"
)

// ExpiryStatus tells whether a grant ending at end is still Initiated or
// has Expired: it expires at its end time exactly, since access is granted
// until then and not after.
func ExpiryStatus(end time.Time, clock Clock) GrantStatus {
	if clock.Now().Before(end) {
		return GrantInitiated
	}
	return GrantExpired
}
