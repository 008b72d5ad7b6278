package jsoncodec

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	authpb "github.com/tokend/tokend/gen/auth"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	_ "github.com/tokend/tokend/gen/base"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	tokenservicev1alpha1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
)

// tokendMessages lists every message type of tokend's API.
func tokendMessages(t *testing.T) []protoreflect.MessageType {
	var out []protoreflect.MessageType
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		name := string(mt.Descriptor().FullName())
		for _, pkg := range []string{"auth.", "base.", "priv.tokenservice.", "m2moauthserver.pb."} {
			if strings.HasPrefix(name, pkg) {
				out = append(out, mt)
			}
		}
		return true
	})
	if len(out) < 20 {
		t.Fatalf("found only %d of tokend's message types", len(out))
	}
	return out
}

var tricky = []string{"", "a", "read write", `q"uote\back`, "<script>&amp;</script>", "tab\tnl\n\x00\x1f",
	"é 中文 🙂", "line\u2028sep\u2029", "https://tokend.test/m2m?x=1&y=2"}

func randString(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		return tricky[r.IntN(len(tricky))]
	}
	var sb strings.Builder
	for range r.IntN(12) {
		sb.WriteRune(rune(r.IntN(0x2FFF)))
	}
	return strings.ToValidUTF8(sb.String(), "?")
}

// populate sets every field of m (one member of each oneof; no maps or
// doubles, which tokend's API lacks) to random values, zero values included,
// nested messages to depth 3.
func populate(r *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() && m.WhichOneof(o) != nil {
			continue
		}
		if f.Kind() == protoreflect.MessageKind && depth >= 3 || f.IsMap() || f.Kind() == protoreflect.DoubleKind {
			continue
		}
		switch {
		case f.IsList():
			l := m.Mutable(f).List()
			for range r.IntN(4) {
				if f.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					populate(r, e.Message(), depth+1)
					l.Append(e)
				} else {
					l.Append(randScalar(r, f))
				}
			}
		case f.Kind() == protoreflect.MessageKind:
			if r.IntN(4) == 0 {
				continue
			}
			if f.Message().FullName() == "google.protobuf.Value" {
				v, _ := structpb.NewValue(map[string]any{"sub": randString(r), "n": float64(r.IntN(1000)), "aud": []any{"x", true, nil}})
				m.Set(f, protoreflect.ValueOfMessage(v.ProtoReflect()))
				continue
			}
			if f.Message().FullName() == "google.protobuf.Timestamp" {
				ts := timestamppb.New(time.Unix(r.Int64N(4e9), r.Int64N(1e9)))
				m.Set(f, protoreflect.ValueOfMessage(ts.ProtoReflect()))
				continue
			}
			populate(r, m.Mutable(f).Message(), depth+1)
		default:
			m.Set(f, randScalar(r, f))
		}
	}
}

func randScalar(r *rand.Rand, f protoreflect.FieldDescriptor) protoreflect.Value {
	zero := r.IntN(5) == 0
	pick := func(v int64) int64 {
		if zero {
			return 0
		}
		return v
	}
	switch f.Kind() {
	case protoreflect.StringKind:
		if zero {
			return protoreflect.ValueOfString("")
		}
		return protoreflect.ValueOfString(randString(r))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(!zero)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(pick(int64(r.Int32()) - 1<<30)))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(pick(int64(r.Uint32()))))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(pick(r.Int64() - 1<<62))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if zero {
			return protoreflect.ValueOfUint64(0)
		}
		return protoreflect.ValueOfUint64(r.Uint64())
	case protoreflect.BytesKind:
		b := make([]byte, r.IntN(10))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.EnumKind:
		vals := f.Enum().Values()
		if r.IntN(6) == 0 {
			return protoreflect.ValueOfEnum(77) // a number the enum does not name
		}
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	}
	panic("no random value for kind " + f.Kind().String())
}

// sameJSON decodes both documents and compares them as values.
func sameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("codec wrote invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("codec wrote\n  %s\nprotojson writes\n  %s", got, want)
	}
}

// Every message of tokend's API, filled with random values, comes out of
// the codec as the same JSON protojson writes, reads back with protojson as
// the same message, and takes the fast path (no fallback to protojson).
func TestMarshalMatchesProtojson(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	c := newCodec("json")
	for _, mt := range tokendMessages(t) {
		for range 300 {
			m := mt.New()
			populate(r, m, 0)
			msg := m.Interface()
			got, err := c.Marshal(msg)
			if err != nil {
				t.Fatalf("%s: %v", mt.Descriptor().FullName(), err)
			}
			want, err := protojson.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, want)
			back := mt.New().Interface()
			if err := protojson.Unmarshal(got, back); err != nil || !proto.Equal(back, msg) {
				t.Fatalf("%s: %s reads back as %v (%v)", mt.Descriptor().FullName(), got, back, err)
			}
			if _, ok := appendMessage(nil, m); !ok {
				t.Fatalf("%s fell back to protojson: %s", mt.Descriptor().FullName(), got)
			}
		}
	}
}

// What protojson refuses, the codec refuses; what the walk leaves to
// protojson (a well-known type at the top) comes out as protojson writes it.
func TestMarshalFallbacks(t *testing.T) {
	c := newCodec("json")
	_, err := c.Marshal(&m2mpb.Token{Id: "bad \xff utf-8"})
	if _, want := protojson.Marshal(&m2mpb.Token{Id: "bad \xff utf-8"}); err == nil || want == nil {
		t.Fatalf("invalid UTF-8: codec error %v, protojson error %v: want both to refuse", err, want)
	}
	for _, msg := range []proto.Message{wrapperspb.String("x"), structpb.NewNumberValue(1.5), structpb.NewNullValue()} {
		got, err := c.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := protojson.Marshal(msg)
		sameJSON(t, got, want)
	}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Fatal("a string marshalled")
	}
	// MarshalAppend keeps what dst held.
	got, err := c.MarshalAppend([]byte("prefix"), &tokenservicev1alpha1.GetAccessTokenResponse{AccessToken: "t", ExpiresIn: 60})
	if err != nil || string(got) != `prefix{"accessToken":"t","expiresIn":"60"}` {
		t.Fatalf("MarshalAppend = %s, %v", got, err)
	}
	stable, err := c.MarshalStable(&authv1.TokenResponse{AccessToken: "a", TokenType: "Bearer"})
	if err != nil || string(stable) != `{"accessToken":"a","tokenType":"Bearer"}` {
		t.Fatalf("MarshalStable = %s, %v", stable, err)
	}
}

// Unmarshal is Connect's JSON reading: both field spellings, unknown fields
// ignored, empty input and wrong types refused.
func TestUnmarshal(t *testing.T) {
	c := newCodec("json; charset=utf-8")
	if c.Name() != "json; charset=utf-8" || c.IsBinary() {
		t.Fatalf("name %q binary %v", c.Name(), c.IsBinary())
	}
	var m authpb.ExchangeTokenRequest
	if err := c.Unmarshal([]byte(`{"client_id":1001,"redirectUri":"x","unknown":{"a":[1]}}`), &m); err != nil {
		t.Fatal(err)
	}
	if m.ClientId != 1001 || m.RedirectUri != "x" {
		t.Fatalf("read %v", &m)
	}
	if err := c.Unmarshal(nil, &m); err == nil {
		t.Fatal("empty payload accepted")
	}
	if err := c.Unmarshal([]byte(`{"clientId":"many"}`), &m); err == nil {
		t.Fatal("a string for a uint32 accepted")
	}
	if err := c.Unmarshal([]byte(`{}`), new(int)); err == nil {
		t.Fatal("a non-message accepted")
	}
}

func BenchmarkMarshal(b *testing.B) {
	claims, _ := structpb.NewValue(map[string]any{"sub": "7", "kind": "user", "aud": []any{"api"}})
	tok := &m2mpb.Token{Id: "3q2-7wVm1Hc8eXy2mJ0xqA", Version: 2, Name: "ci deploy", Owner: "svc-owner", IssuedAt: 1764000000,
		Audience: []string{"api"}, Scope: []string{"read", "write"}, Expiration: 1764003600, ClientId: "m2m-svc", Subject: "m2m-svc"}
	withClaims := proto.Clone(tok).(*m2mpb.Token)
	withClaims.OriginalTokenClaims = claims
	for _, bc := range []struct {
		name string
		msg  proto.Message
	}{{"Token", tok}, {"Token+claims", withClaims}} {
		b.Run(bc.name+"/codec", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			for b.Loop() {
				buf, _ = newCodec("json").MarshalAppend(buf[:0], bc.msg)
			}
		})
		b.Run(bc.name+"/protojson", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 1024)
			for b.Loop() {
				buf, _ = protojson.MarshalOptions{}.MarshalAppend(buf[:0], bc.msg)
			}
		})
	}
}
