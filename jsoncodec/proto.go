package jsoncodec

import (
	"fmt"
	"regexp"

	"google.golang.org/protobuf/proto"
)

// protoCodec is Connect's binary protobuf codec with errors a caller can
// read: what message was expected and what was wrong with it, never the Go
// type it was decoded into (Connect's own says "unmarshal into
// *authv1.TokenRequest: proto: …").
type protoCodec struct{}

// Name is the codec's name in content types.
func (protoCodec) Name() string { return "proto" }

// IsBinary reports that the codec's output is binary.
func (protoCodec) IsBinary() bool { return true }

// Marshal writes message in the protobuf binary format.
func (c protoCodec) Marshal(message any) ([]byte, error) { return c.MarshalAppend(nil, message) }

// MarshalAppend appends message in the protobuf binary format to dst.
func (protoCodec) MarshalAppend(dst []byte, message any) ([]byte, error) {
	m, ok := message.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", message)
	}
	return proto.MarshalOptions{}.MarshalAppend(dst, m)
}

// MarshalStable writes message deterministically (map keys sorted).
func (protoCodec) MarshalStable(message any) ([]byte, error) {
	m, ok := message.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", message)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// Unmarshal reads the protobuf binary format into message.
func (protoCodec) Unmarshal(data []byte, message any) error {
	m, ok := message.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", message)
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return callerError("invalid protobuf for", m, err)
	}
	return nil
}

// protoPrefix is how the protobuf library starts its errors ("proto:",
// followed by a space or, at random, a no-break space).
var protoPrefix = regexp.MustCompile(`^proto:[\s\x{00a0}]*`)

// callerError says which message could not be read, by its protobuf name
// (as the API names it), and why, without the library's prefix.
func callerError(what string, m proto.Message, err error) error {
	return fmt.Errorf("%s %s: %s", what, m.ProtoReflect().Descriptor().FullName(), protoPrefix.ReplaceAllString(err.Error(), ""))
}
