package jsoncodec

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	authpb "github.com/tokend/tokend/gen/auth"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	tokenservicev1alpha1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
)

// protojsonIn is what the codec must read exactly like.
var protojsonIn = protojson.UnmarshalOptions{DiscardUnknown: true}

// kindsFile declares a message of every kind the reader handles, and of some
// it leaves to protojson (a map, a double), which tokend's API lacks: no
// enums, bytes, sint or fixed there.
const kindsFile = `name: "jsoncodec/kinds.proto" package: "jsoncodectest" syntax: "proto3"
enum_type { name: "Color" value { name: "COLOR_UNSPECIFIED" number: 0 } value { name: "RED" number: 1 } value { name: "BLUE" number: -2 } }
message_type {
  name: "Kinds"
  field { name: "str" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "flag" number: 2 label: LABEL_OPTIONAL type: TYPE_BOOL }
  field { name: "i32" number: 3 label: LABEL_OPTIONAL type: TYPE_INT32 }
  field { name: "i64" number: 4 label: LABEL_OPTIONAL type: TYPE_INT64 }
  field { name: "u32" number: 5 label: LABEL_OPTIONAL type: TYPE_UINT32 }
  field { name: "u64" number: 6 label: LABEL_OPTIONAL type: TYPE_UINT64 }
  field { name: "s32" number: 7 label: LABEL_OPTIONAL type: TYPE_SINT32 }
  field { name: "s64" number: 8 label: LABEL_OPTIONAL type: TYPE_SINT64 }
  field { name: "f32" number: 9 label: LABEL_OPTIONAL type: TYPE_FIXED32 }
  field { name: "f64" number: 10 label: LABEL_OPTIONAL type: TYPE_FIXED64 }
  field { name: "sf32" number: 11 label: LABEL_OPTIONAL type: TYPE_SFIXED32 }
  field { name: "sf64" number: 12 label: LABEL_OPTIONAL type: TYPE_SFIXED64 }
  field { name: "raw" number: 13 label: LABEL_OPTIONAL type: TYPE_BYTES }
  field { name: "color" number: 14 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".jsoncodectest.Color" }
  field { name: "child" number: 15 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".jsoncodectest.Kinds" }
  field { name: "list_str" number: 16 label: LABEL_REPEATED type: TYPE_STRING }
  field { name: "list_i64" number: 17 label: LABEL_REPEATED type: TYPE_INT64 }
  field { name: "list_color" number: 18 label: LABEL_REPEATED type: TYPE_ENUM type_name: ".jsoncodectest.Color" }
  field { name: "list_raw" number: 19 label: LABEL_REPEATED type: TYPE_BYTES }
  field { name: "children" number: 20 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".jsoncodectest.Kinds" }
  field { name: "one_a" number: 21 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 }
  field { name: "one_b" number: 22 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".jsoncodectest.Kinds" oneof_index: 0 }
  field { name: "opt" number: 23 label: LABEL_OPTIONAL type: TYPE_INT32 oneof_index: 1 proto3_optional: true }
  field { name: "custom" number: 24 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "renamedField" }
  field { name: "dbl" number: 25 label: LABEL_OPTIONAL type: TYPE_DOUBLE }
  field { name: "labels" number: 26 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".jsoncodectest.Kinds.LabelsEntry" }
  nested_type {
    name: "LabelsEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
  }
  oneof_decl { name: "one" }
  oneof_decl { name: "_opt" }
}`

// proto2File declares what the reader leaves to protojson in proto2.
const proto2File = `name: "jsoncodec/proto2.proto" package: "jsoncodectest" syntax: "proto2"
message_type { name: "Extensible" field { name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING } extension_range { start: 100 end: 200 } }
message_type {
  name: "Required"
  field { name: "name" number: 1 label: LABEL_REQUIRED type: TYPE_STRING }
  field { name: "other" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
}`

// testTypes are the messages of kindsFile and proto2File by name, and Wide,
// a message of 70 strings (w0 to w69): more fields than the reader tracks.
var testTypes = func() map[string]protoreflect.MessageType {
	types := map[string]protoreflect.MessageType{}
	for _, file := range []string{kindsFile, proto2File} {
		var fdp descriptorpb.FileDescriptorProto
		if err := prototext.Unmarshal([]byte(file), &fdp); err != nil {
			panic(err)
		}
		if fdp.GetSyntax() == "proto3" {
			wide := &descriptorpb.DescriptorProto{Name: proto.String("Wide")}
			for i := range 70 {
				wide.Field = append(wide.Field, &descriptorpb.FieldDescriptorProto{Name: proto.String(fmt.Sprint("w", i)), Number: proto.Int32(int32(i + 1)),
					Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()})
			}
			fdp.MessageType = append(fdp.MessageType, wide)
		}
		fd, err := protodesc.NewFile(&fdp, protoregistry.GlobalFiles)
		if err != nil {
			panic(err)
		}
		for i := range fd.Messages().Len() {
			types[string(fd.Messages().Get(i).Name())] = dynamicpb.NewMessageType(fd.Messages().Get(i))
		}
	}
	return types
}()

var kindsType = testTypes["Kinds"]

// fullyReadable reports whether the reader handles every message of type d,
// whatever fields it has set.
func fullyReadable(d protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if strings.HasPrefix(string(d.FullName()), "google.protobuf.") {
		return false
	}
	if seen[d.FullName()] {
		return true
	}
	seen[d.FullName()] = true
	for i := range d.Fields().Len() {
		f := d.Fields().Get(i)
		if !readable(f) || f.Message() != nil && !fullyReadable(f.Message(), seen) {
			return false
		}
	}
	return true
}

// Random messages of every type of tokend's API (and of every kind), as
// protojson writes them in its various styles, read as protojson reads
// them; the reader reads all of them when their type has nothing it leaves
// to protojson (or it is the kinds message, whose map and double populate
// leaves unset).
func TestUnmarshalMatchesProtojson(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 13))
	c := newCodec("json")
	styles := []protojson.MarshalOptions{{}, {UseProtoNames: true}, {EmitUnpopulated: true},
		{UseProtoNames: true, EmitUnpopulated: true, Multiline: true, Indent: "\t"}}
	for _, name := range []protoreflect.FullName{"m2moauthserver.pb.CreateTokenRequest", "m2moauthserver.pb.GetTokensRequest",
		"m2moauthserver.pb.DeleteTokensRequest", "auth.v1.TokenRequest", "auth.v1.RefreshTokenRequest",
		"auth.ExchangeTokenRequest", "auth.GenerateAuthorizationCodeRequest", "priv.tokenservice.v1alpha1.GetAccessTokenRequest"} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil || !fullyReadable(d.(protoreflect.MessageDescriptor), map[protoreflect.FullName]bool{}) {
			t.Errorf("request %s: %v, or not fully readable", name, err)
		}
	}
	for _, mt := range append(tokendMessages(t), kindsType) {
		all := fullyReadable(mt.Descriptor(), map[protoreflect.FullName]bool{})
		fast := 0
		const n = 400
		for i := range n {
			m := mt.New()
			populate(r, m, 0)
			style := styles[i%len(styles)]
			data, err := style.Marshal(m.Interface())
			if err != nil {
				t.Fatal(err)
			}
			want := mt.New().Interface()
			if err := protojsonIn.Unmarshal(data, want); err != nil {
				t.Fatal(err)
			}
			got := mt.New().Interface()
			if err := c.Unmarshal(data, got); err != nil || !proto.Equal(got, want) {
				t.Fatalf("%s: codec read %s as %v (%v), protojson as %v", mt.Descriptor().FullName(), data, got, err, want)
			}
			direct := mt.New()
			switch {
			case fastUnmarshal(data, direct):
				fast++
				if !proto.Equal(direct.Interface(), want) {
					t.Fatalf("%s: reader read %s as %v, protojson as %v", mt.Descriptor().FullName(), data, direct, want)
				}
			case all || mt == kindsType && !style.EmitUnpopulated: // else its 0 double and {} map are written
				t.Fatalf("%s: reader left %s to protojson", mt.Descriptor().FullName(), data)
			}
		}
		t.Logf("%s: reader read %d of %d", mt.Descriptor().FullName(), fast, n)
	}
}

// Hand-picked input: the reader reads what it should (fast) and leaves the
// rest to protojson, and the codec's result or error is protojson's.
func TestUnmarshalEdgeCases(t *testing.T) {
	kinds, wide := kindsType.New().Interface(), testTypes["Wide"].New().Interface()
	extensible, required := testTypes["Extensible"].New().Interface(), testTypes["Required"].New().Interface()
	deep := strings.Repeat(`{"child":`, 40) + "{}" + strings.Repeat("}", 40)
	for _, tc := range []struct {
		msg  proto.Message
		json string
		fast bool
	}{
		{kinds, `{}`, true},
		{kinds, " \t\n\r{ \n\"str\" \t:\r \"x\" , \"flag\" : true ,\"listStr\":[ \"a\" , \"b\" ] }\n ", true},
		{kinds, `{"str":"q\"b\\s\/f\b\f\n\r\t<>&"}`, true},
		{kinds, `{"str":"\u00e9\u4E2D\uD83D\uDE00 \ud83d\ude00 \u0000 \uFFFD"}`, true},
		{kinds, "{\"str\":\"é 中文 🙂 \uFFFD \u2028\"}", true},
		{kinds, `{"\u0073tr":"escaped key"}`, true},
		{kinds, `{"i32":-2147483648,"i64":"-9223372036854775808","u32":4294967295,"u64":"18446744073709551615"}`, true},
		{kinds, `{"i32":"2147483647","i64":9223372036854775807,"u32":"0","u64":18446744073709551615}`, true},
		{kinds, `{"i64":123,"u64":0,"i32":"-5","s32":-1,"s64":"-2","f32":7,"f64":"8","sf32":-9,"sf64":"-10"}`, true},
		{kinds, `{"i32":-0,"i64":"-0"}`, true},
		{kinds, `{"color":"RED","listColor":["BLUE",1,77,-2,"COLOR_UNSPECIFIED"]}`, true},
		{kinds, `{"color":-2}`, true},
		{kinds, `{"raw":"AQID","listRaw":["_-8","+/8=","","AQI","AQI=","YW\nJj"]}`, true},
		{kinds, `{"str":null,"child":null,"listStr":null,"i64":null,"color":null,"raw":null,"flag":null}`, true},
		{&tokenservicev1alpha1.CreateTokenRequest{}, `{"name":"n","expireTime":null}`, true},
		{kinds, `{"child":{"str":"x","child":{"i32":1,"children":[{}]}},"children":[{},{"str":"y"}]}`, true},
		{kinds, `{"one_a":"x"}`, true},
		{kinds, `{"oneB":{"str":"y"}}`, true},
		{kinds, `{"oneA":null,"oneB":{}}`, true},
		{kinds, `{"opt":0,"flag":false,"str":""}`, true},
		{kinds, `{"list_str":[],"listI64":["1",2,"-3"],"children":[]}`, true},
		{kinds, `{"custom":"a"}`, true},
		{kinds, `{"renamedField":"b"}`, true},
		{&m2mpb.CreateTokenRequest{}, `{"grant_type":"client_credentials","client_id":"x","expiration":"1764003600"}`, true},
		{&authpb.ExchangeTokenRequest{}, `{"client_id":1001,"redirectUri":"x","base":{"logId":"l"}}`, true},
		{&authv1.TokenRequest{}, `{"passwordCredential":{"username":"u","password":"p"}}`, true},
		{wide, `{"w0":"a","w63":"b"}`, true},

		// Left to protojson, which accepts.
		{kinds, `{"nope":1}`, false},
		{kinds, `{"str":"x","nope":{"a":[1,{}]}}`, false},
		{kinds, `{"[foo.bar]":1}`, false},
		{kinds, `{"i32":1.0}`, false},
		{kinds, `{"i32":1e3}`, false},
		{kinds, `{"i32":1E+0,"i64":"1e2","u64":"10.0e-1"}`, false},
		{kinds, `{"i32":1e}`, false}, // an empty exponent: protojson reads 1
		{kinds, `{"i32":"\u0031"}`, false},
		{kinds, `{"u32":"-0","u64":-0}`, false},
		{kinds, `{"color":"PURPLE","listColor":["PURPLE","RED"]}`, false}, // unknown names dropped
		{kinds, `{"color":"1"}`, false},
		{kinds, `{"color":1.0}`, false},
		{kinds, `{"dbl":1.5}`, false},
		{kinds, `{"dbl":null}`, false},
		{kinds, `{"labels":{"a":"b"}}`, false},
		{&tokenservicev1alpha1.CreateTokenRequest{}, `{"expireTime":"2024-01-01T00:00:00Z"}`, false},
		{&m2mpb.Token{}, `{"id":"x","originalTokenClaims":null}`, false}, // null is a Value of its own
		{kinds, deep, false},
		{wide, `{"w0":"a","w69":"b"}`, false},
		{extensible, `{"name":"x"}`, false},
		{extensible, `{"name":"x","[jsoncodectest.nope]":1}`, false},
		{required, `{"name":"x"}`, false},

		// Left to protojson, which refuses.
		{kinds, ``, false},
		{kinds, `{"str":"a","str":"b"}`, false},
		{kinds, `{"str":"a","str":null}`, false},
		{kinds, `{"str":null,"str":"a"}`, false},
		{kinds, `{"listStr":["a"],"list_str":["b"]}`, false},
		{kinds, `{"renamedField":"x","custom":"y"}`, false},
		{kinds, `{"oneA":"x","oneB":{}}`, false},
		{kinds, `{"oneB":{},"one_a":"x"}`, false},
		{kinds, `{"i32":1.5}`, false},
		{kinds, `{"i32":" 1"}`, false},
		{kinds, `{"i32":"1 "}`, false},
		{kinds, `{"i32":"+1"}`, false},
		{kinds, `{"i32":+1}`, false},
		{kinds, `{"i32":01}`, false},
		{kinds, `{"i32":"01"}`, false},
		{kinds, `{"i32":-}`, false},
		{kinds, `{"i32":""}`, false},
		{kinds, `{"i32":true}`, false},
		{kinds, `{"u32":-1}`, false},
		{kinds, `{"i32":2147483648}`, false},
		{kinds, `{"i32":-2147483649}`, false},
		{kinds, `{"u32":4294967296}`, false},
		{kinds, `{"i64":"9223372036854775808"}`, false},
		{kinds, `{"u64":18446744073709551616}`, false},
		{kinds, `{"u64":"99999999999999999999999"}`, false},
		{kinds, `{"flag":"true"}`, false},
		{kinds, `{"flag":1}`, false},
		{kinds, `{"flag":tru}`, false},
		{kinds, `{"flag":truex}`, false},
		{kinds, `{"str":nullx}`, false},
		{kinds, `{"str":1}`, false},
		{kinds, `{"str":"\ud83d"}`, false},
		{kinds, `{"str":"\ude00\ud83d"}`, false},
		{kinds, `{"str":"\ud83d\u0041"}`, false},
		{kinds, `{"str":"\ud83dx"}`, false},
		{kinds, `{"str":"\ud83d\ude0"}`, false},
		{kinds, `{"str":"\x"}`, false},
		{kinds, `{"str":"\u12"}`, false},
		{kinds, `{"str":"\u+123"}`, false},
		{kinds, "{\"str\":\"a\x01\"}", false},
		{kinds, "{\"str\":\"a\tb\"}", false},
		{kinds, "{\"str\":\"\xff\"}", false},
		{kinds, "{\"str\":\"\xed\xa0\x80\"}", false},
		{kinds, "{\"str\":\"\xe4\xb8\"}", false},
		{kinds, `{"raw":"!!"}`, false},
		{kinds, `{"raw":"+-"}`, false},
		{kinds, `{"raw":"A"}`, false},
		{kinds, `{"child":[]}`, false},
		{kinds, `{"child":"x"}`, false},
		{kinds, `{"children":[null]}`, false},
		{kinds, `{"listStr":[null]}`, false},
		{kinds, `{"listStr":"a"}`, false},
		{kinds, `{"listStr":["a",]}`, false},
		{kinds, `{"listStr":[,"a"]}`, false},
		{kinds, `{"listStr":["a" "b"]}`, false},
		{kinds, `{"listStr":["a"`, false},
		{kinds, `{`, false},
		{kinds, `{"str"`, false},
		{kinds, `{"str":`, false},
		{kinds, `{"str":"a"`, false},
		{kinds, `{"str":"a`, false},
		{kinds, `{"str":"a",}`, false},
		{kinds, `{,}`, false},
		{kinds, `{"str" "a"}`, false},
		{kinds, `{str:"a"}`, false},
		{kinds, `{"str":"a"}}`, false},
		{kinds, `{"str":"a"} x`, false},
		{kinds, `{"str":"a"}{}`, false},
		{kinds, "\ufeff{}", false},
		{kinds, `[]`, false},
		{kinds, `null`, false},
		{kinds, `"x"`, false},
		{&authpb.ExchangeTokenRequest{}, `{"clientId":"many"}`, false},
		{&authv1.TokenRequest{}, `{"passwordCredential":{"username":"u"},"password_credential":null}`, false},
		{&tokenservicev1alpha1.CreateTokenRequest{}, `{"expireTime":{}}`, false},
		{&tokenservicev1alpha1.CreateTokenRequest{}, `{"expireTime":{"seconds":"1"}}`, false},
		{required, `{"other":"x"}`, false},
		{wide, `{"w69":"a","w69":"b"}`, false},
	} {
		name := string(tc.msg.ProtoReflect().Descriptor().Name()) + " " + tc.json
		data := []byte(tc.json)
		if len(data) > 0 {
			if got := fastUnmarshal(data, tc.msg.ProtoReflect().Type().New()); got != tc.fast {
				t.Errorf("%s: reader read it: %v, want %v", name, got, tc.fast)
			}
		}
		want := tc.msg.ProtoReflect().Type().New().Interface()
		wantErr := protojsonIn.Unmarshal(data, want)
		got := tc.msg.ProtoReflect().Type().New().Interface()
		populate(rand.New(rand.NewPCG(1, 2)), got.ProtoReflect(), 0) // the codec must not merge
		err := newCodec("json").Unmarshal(data, got)
		if (err == nil) != (wantErr == nil) || err == nil && !proto.Equal(got, want) {
			t.Errorf("%s: codec read %v (%v), protojson %v (%v)", name, got, err, want, wantErr)
		}
	}
}

// Whatever the reader accepts, protojson accepts and reads the same; and
// the codec's result or error is protojson's.
func FuzzUnmarshal(f *testing.F) {
	types := []protoreflect.MessageType{(&m2mpb.CreateTokenRequest{}).ProtoReflect().Type(),
		(&m2mpb.GetTokensRequest{}).ProtoReflect().Type(), (&authv1.TokenRequest{}).ProtoReflect().Type(),
		(&authpb.ExchangeTokenRequest{}).ProtoReflect().Type(), (&tokenservicev1alpha1.CreateTokenRequest{}).ProtoReflect().Type(), kindsType}
	for i, s := range []string{
		`{"grantType":"client_credentials","clientId":"bench-m2m","clientSecret":"bench-m2m-secret","audience":["api"]}`,
		`{"idFilter":["a","b","c","d"],"includeBlacklisted":true}`,
		`{"passwordCredential":{"username":"alice","password":"p\u00e4ss\"w\\rd"}}`,
		`{"code":"c0de","client_id":1001,"clientSecret":"s","redirectUri":"https://x.test/cb?a=1&b=2","codeVerifier":"v","base":{"logId":"l","caller":"svc"}}`,
		`{"name":"ci","expireTime":"2030-01-01T00:00:00Z"}`,
		`{"str":"\ud83d\ude00","i64":"-12","u64":"18446744073709551615","color":"BLUE","raw":"AQI","child":{"listColor":[1,"RED"]},"oneA":"x","opt":0}`,
	} {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		mt := types[int(which)%len(types)]
		want := mt.New().Interface()
		wantErr := protojsonIn.Unmarshal(data, want)
		if direct := mt.New(); len(data) > 0 && fastUnmarshal(data, direct) {
			if wantErr != nil || !proto.Equal(direct.Interface(), want) {
				t.Fatalf("reader read %q as %v, protojson as %v (%v)", data, direct, want, wantErr)
			}
		}
		got := mt.New().Interface()
		err := newCodec("json").Unmarshal(data, got)
		if (err == nil) != (wantErr == nil) || err == nil && !proto.Equal(got, want) {
			t.Fatalf("codec read %q as %v (%v), protojson as %v (%v)", data, got, err, want, wantErr)
		}
	})
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, bc := range []struct {
		name string
		json string
		msg  proto.Message
	}{
		{"CreateToken", `{"grantType":"client_credentials","clientId":"bench-m2m","clientSecret":"bench-m2m-secret","audience":["api"]}`, &m2mpb.CreateTokenRequest{}},
		{"GetTokens", `{"idFilter":["3q2-7wVm1Hc8eXy2mJ0xqA","Yb4t0VQx9kS2rN7cLm1pZw","p8WcE3nH6uJd0aTq5RyvKg","M0xQ7fZb2LsN9eVt4HrkWA"]}`, &m2mpb.GetTokensRequest{}},
	} {
		data := []byte(bc.json)
		b.Run(bc.name+"/codec", func(b *testing.B) {
			b.ReportAllocs()
			c := newCodec("json")
			for b.Loop() {
				if err := c.Unmarshal(data, bc.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/protojson", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := protojsonIn.Unmarshal(data, bc.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
