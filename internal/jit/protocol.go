package jit

// Protocol is a JIT port's transport protocol as users write it.
type Protocol string

const (
	ProtocolTCP Protocol = "TCP"
	ProtocolUDP Protocol = "UDP"
	ProtocolAny Protocol = "*"
)

// Protocols lists the accepted values, in documentation order.
var Protocols = []Protocol{ProtocolTCP, ProtocolUDP, ProtocolAny}

// Covers reports whether traffic of protocol q is matched by p ("*" covers both).
func (p Protocol) Covers(q Protocol) bool { return p == ProtocolAny || p == q }

// PortProtocol is one locked (or granted) port: a number and a protocol.
type PortProtocol struct {
	Number   int
	Protocol Protocol
}
