package jsoncodec

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestProtoCodecRoundTripAndErrors(t *testing.T) {
	var c protoCodec
	in := structpb.NewStringValue("hello")
	b, err := c.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := &structpb.Value{}
	if err := c.Unmarshal(b, out); err != nil || !proto.Equal(in, out) {
		t.Fatalf("round trip: %v, %v", out, err)
	}
	err = c.Unmarshal([]byte{0xff, 0xff, 0xff}, out)
	if err == nil || !strings.HasPrefix(err.Error(), "invalid protobuf for google.protobuf.Value: ") || strings.Contains(err.Error(), "*") {
		t.Fatalf("error %v, want one naming google.protobuf.Value and no Go type", err)
	}
}
