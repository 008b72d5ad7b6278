//go:build !unix

package redistest

const canHold = false

// portHold does nothing where raw sockets are not at hand: the port is free
// while the server is stopped.
type portHold struct{}

func holdPort(int) *portHold { return nil }

func (*portHold) release() {}

func bind(int, bool) *portHold { return nil }
