//go:build unix

package redistest

import "syscall"

const canHold = true

// portHold is a TCP socket bound to a loopback port without listening: no
// other process can bind the port, and connections to it are refused.
type portHold struct{ fd int }

// holdPort binds port on 127.0.0.1, or returns nil if it cannot.
func holdPort(port int) *portHold {
	// Without SO_REUSEADDR the hold is exclusive; but the connections of a
	// killed server linger in TIME_WAIT and then only a SO_REUSEADDR bind
	// succeeds (which still keeps out binders that do not set it).
	for _, reuse := range []bool{false, true} {
		if h := bind(port, reuse); h != nil {
			return h
		}
	}
	return nil
}

func bind(port int, reuse bool) *portHold {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil
	}
	if reuse {
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return nil
	}
	return &portHold{fd: fd}
}

func (h *portHold) release() {
	if h != nil && h.fd >= 0 {
		syscall.Close(h.fd)
		h.fd = -1
	}
}
