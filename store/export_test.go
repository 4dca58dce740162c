package store

// HoldPasswordChecks takes n of s's password-check slots until the
// returned func is called (tests of the bound on hashing).
func HoldPasswordChecks(s *Store, n int) func() {
	for range n {
		s.hashes.slots <- struct{}{}
	}
	return func() {
		for range n {
			<-s.hashes.slots
		}
	}
}

// PasswordCheckWaiters is how many logins wait for a slot.
func PasswordCheckWaiters(s *Store) int { return len(s.hashes.waiters) }
