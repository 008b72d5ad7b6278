// Package jsoncodec is tokend's Connect codec for JSON ("json" and
// "json; charset=utf-8"). It reads what Connect's own JSON codec reads
// (protojson, unknown fields discarded) and writes the same JSON as
// protojson, both ways by a direct walk over the message's fields, at about
// half protojson's cost on the hot messages (M2M token requests and records,
// token responses). A message the writer does not handle exactly (maps,
// floating point, extensions, google.protobuf.NullValue) is written by
// protojson itself, and so is every well-known type. Input the reader does
// not handle exactly (the same, oneof clashes, unknown or repeated keys,
// anything else odd) is read by protojson from the start, so errors and edge
// cases stay protojson's.
package jsoncodec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tokend/tokend/internal/jsonstr"
)

// HandlerOptions installs the codec under both names Connect gives JSON,
// and protoCodec for the binary format.
func HandlerOptions() []connect.HandlerOption {
	return []connect.HandlerOption{connect.WithCodec(Codec{"json"}), connect.WithCodec(Codec{"json; charset=utf-8"}),
		connect.WithCodec(protoCodec{})}
}

// Codec is a Connect codec for protobuf messages as proto3 JSON.
type Codec struct{ name string }

// newCodec returns a codec registered as name ("json" or "json; charset=utf-8").
func newCodec(name string) Codec { return Codec{name} }

// Name is the codec's name in content types.
func (c Codec) Name() string { return c.name }

// IsBinary reports that the codec's output is text.
func (Codec) IsBinary() bool { return false }

// Marshal writes message as proto3 JSON.
func (c Codec) Marshal(message any) ([]byte, error) { return c.MarshalAppend(nil, message) }

// MarshalStable is Marshal: the output has no whitespace and fields in
// declaration order either way.
func (c Codec) MarshalStable(message any) ([]byte, error) {
	b, err := c.Marshal(message)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil { // protojson's output may carry random spaces
		return nil, err
	}
	return out.Bytes(), nil
}

// MarshalAppend appends message as proto3 JSON to dst.
func (Codec) MarshalAppend(dst []byte, message any) ([]byte, error) {
	m, ok := message.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", message)
	}
	if b, ok := appendMessage(dst, m.ProtoReflect()); ok {
		return b, nil
	}
	return protojson.MarshalOptions{}.MarshalAppend(dst, m)
}

// Unmarshal reads proto3 JSON into message, as Connect's own codec does:
// directly when the reader handles all of data, else with protojson.
func (Codec) Unmarshal(data []byte, message any) error {
	m, ok := message.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", message)
	}
	if len(data) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	proto.Reset(m) // protojson replaces the message's contents, and so does the reader
	if fastUnmarshal(data, m.ProtoReflect()) {
		return nil
	}
	proto.Reset(m) // what the reader filled in before giving up must not leak
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, m); err != nil {
		return callerError("invalid JSON for", m, err)
	}
	return nil
}

// appendMessage appends m as protojson would write it (without its random
// whitespace), or reports false when m holds something it leaves to
// protojson; then b's appended bytes are garbage and the caller starts over
// from its own slice.
func appendMessage(b []byte, m protoreflect.Message) ([]byte, bool) {
	d := m.Descriptor()
	if strings.HasPrefix(string(d.FullName()), "google.protobuf.") {
		// Well-known types have JSON forms of their own (Value, Timestamp…).
		out, err := protojson.MarshalOptions{}.MarshalAppend(b, m.Interface())
		return out, err == nil
	}
	if d.ExtensionRanges().Len() > 0 {
		return b, false // extensions are not among the fields walked
	}
	b = append(b, '{')
	first := true
	fields := d.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if !m.Has(f) {
			continue
		}
		if f.IsMap() {
			return b, false
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, f.JSONName()...) // field names are identifiers: nothing to escape
		b = append(b, '"', ':')
		v := m.Get(f)
		var ok bool
		if f.IsList() {
			l := v.List()
			b = append(b, '[')
			for i := range l.Len() {
				if i > 0 {
					b = append(b, ',')
				}
				if b, ok = appendValue(b, f, l.Get(i)); !ok {
					return b, false
				}
			}
			b = append(b, ']')
			continue
		}
		if b, ok = appendValue(b, f, v); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendValue appends one value of field f (an element, for a list).
func appendValue(b []byte, f protoreflect.FieldDescriptor, v protoreflect.Value) ([]byte, bool) {
	switch f.Kind() {
	case protoreflect.StringKind:
		s := v.String()
		if !utf8.ValidString(s) {
			return b, false // protojson refuses it, with its own error
		}
		return jsonstr.Append(b, s), true
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool()), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(b, v.Int(), 10), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(b, v.Uint(), 10), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		b = strconv.AppendInt(append(b, '"'), v.Int(), 10) // 64-bit integers are strings in proto3 JSON
		return append(b, '"'), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b = strconv.AppendUint(append(b, '"'), v.Uint(), 10)
		return append(b, '"'), true
	case protoreflect.BytesKind:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes())
		return append(b, '"'), true
	case protoreflect.EnumKind:
		if f.Enum().FullName() == "google.protobuf.NullValue" {
			return b, false
		}
		if ev := f.Enum().Values().ByNumber(v.Enum()); ev != nil {
			b = append(b, '"')
			b = append(b, ev.Name()...)
			return append(b, '"'), true
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10), true
	case protoreflect.MessageKind:
		return appendMessage(b, v.Message())
	}
	return b, false // float, double, group: protojson's special cases
}

// maxDepth bounds the reader's recursion; deeper input is protojson's, whose
// own limit is far higher.
const maxDepth = 32

// reader reads the JSON clients send (objects of strings, integers, bools,
// enums, bytes, lists of those and nested objects) straight into a message.
// It is strict: anything it does not handle exactly as protojson does, valid
// or not, makes it give up, and its caller starts over with protojson.
type reader struct {
	b []byte
	i int
}

// fastUnmarshal reads data into the empty message m, or reports false (m
// then half-filled) when data holds anything it leaves to protojson.
func fastUnmarshal(data []byte, m protoreflect.Message) bool {
	r := reader{b: data}
	if !r.message(m, 0) {
		return false
	}
	r.space()
	return r.i == len(r.b) // trailing garbage is protojson's error
}

// space skips JSON whitespace.
func (r *reader) space() {
	for r.i < len(r.b) && (r.b[r.i] == ' ' || r.b[r.i] == '\n' || r.b[r.i] == '\r' || r.b[r.i] == '\t') {
		r.i++
	}
}

// next skips whitespace and then s if s comes next.
func (r *reader) next(s string) bool {
	r.space()
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return false
	}
	r.i += len(s)
	return true
}

// message reads a JSON object into m. A key is a field's JSON name or its
// proto name, as in protojson; an unknown key, the same field twice (which
// protojson refuses) or two members of one oneof make it give up.
func (r *reader) message(m protoreflect.Message, depth int) bool {
	d := m.Descriptor()
	if depth > maxDepth || strings.HasPrefix(string(d.FullName()), "google.protobuf.") ||
		d.ExtensionRanges().Len() > 0 || d.RequiredNumbers().Len() > 0 {
		return false // well-known types' own JSON forms, extensions, required fields
	}
	if !r.next("{") {
		return false
	}
	if r.next("}") {
		return true
	}
	fields := d.Fields()
	var seen uint64 // indexes of the fields read, under either name
	for {
		key, ok := r.str()
		if !ok || !r.next(":") || len(key) > 0 && key[0] == '[' { // [name] is an extension's key
			return false
		}
		name := string(key)
		f := fields.ByJSONName(name)
		if f == nil {
			f = fields.ByTextName(name)
		}
		if f == nil || f.Index() >= 64 || seen&(1<<f.Index()) != 0 || !readable(f) {
			return false
		}
		seen |= 1 << f.Index()
		switch {
		case r.next("null"): // protojson leaves the field unset
		case f.IsList():
			l := m.Mutable(f).List()
			if !r.next("[") {
				return false
			}
			for first := true; !r.next("]"); first = false {
				if !first && !r.next(",") {
					return false
				}
				v, ok := r.value(f, l.NewElement(), depth)
				if !ok {
					return false
				}
				l.Append(v)
			}
		default:
			if o := f.ContainingOneof(); o != nil && m.WhichOneof(o) != nil {
				return false
			}
			v, ok := r.value(f, m.NewField(f), depth)
			if !ok {
				return false
			}
			m.Set(f, v)
		}
		if !r.next(",") {
			return r.next("}")
		}
	}
}

// readable reports whether the reader handles values of f: not maps,
// floating point (NaN, exponents…), groups, or the types protojson reads
// null into.
func readable(f protoreflect.FieldDescriptor) bool {
	switch f.Kind() {
	case protoreflect.FloatKind, protoreflect.DoubleKind, protoreflect.GroupKind:
		return false
	case protoreflect.MessageKind:
		return !f.IsMap() && f.Message().FullName() != "google.protobuf.Value"
	case protoreflect.EnumKind:
		return f.Enum().FullName() != "google.protobuf.NullValue"
	}
	return true
}

// value reads one value of f (an element, for a list); a message is read
// into v, a new field or element.
func (r *reader) value(f protoreflect.FieldDescriptor, v protoreflect.Value, depth int) (protoreflect.Value, bool) {
	switch f.Kind() {
	case protoreflect.MessageKind:
		return v, r.message(v.Message(), depth+1)
	case protoreflect.StringKind:
		s, ok := r.str()
		return protoreflect.ValueOfString(string(s)), ok
	case protoreflect.BoolKind:
		if r.next("true") {
			return protoreflect.ValueOfBool(true), true
		}
		return protoreflect.ValueOfBool(false), r.next("false")
	case protoreflect.BytesKind:
		s, ok := r.str()
		enc := base64.StdEncoding // protojson's choice of encoding, to the letter
		if bytes.ContainsAny(s, "-_") {
			enc = base64.URLEncoding
		}
		if len(s)%4 != 0 {
			enc = enc.WithPadding(base64.NoPadding)
		}
		b, err := enc.DecodeString(string(s))
		return protoreflect.ValueOfBytes(b), ok && err == nil
	case protoreflect.EnumKind:
		if r.space(); r.i < len(r.b) && r.b[r.i] == '"' {
			s, ok := r.str()
			ev := f.Enum().Values().ByName(protoreflect.Name(s))
			if !ok || ev == nil { // protojson drops an unknown name, field and all
				return v, false
			}
			return protoreflect.ValueOfEnum(ev.Number()), true
		}
		n, err := strconv.ParseInt(string(r.integer(false)), 10, 32)
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), err == nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(string(r.integer(true)), 10, 32)
		return protoreflect.ValueOfInt32(int32(n)), err == nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(string(r.integer(true)), 10, 64)
		return protoreflect.ValueOfInt64(n), err == nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(string(r.integer(true)), 10, 32)
		return protoreflect.ValueOfUint32(uint32(n)), err == nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(string(r.integer(true)), 10, 64)
		return protoreflect.ValueOfUint64(n), err == nil
	}
	return v, false
}

// integer reads a JSON number that is a plain decimal integer, quoted too
// if quoted; it returns nil (which no parse accepts) for anything else, such
// as a fraction or an exponent, which protojson reads by rules of its own.
func (r *reader) integer(quoted bool) []byte {
	r.space()
	q := quoted && r.i < len(r.b) && r.b[r.i] == '"'
	if q {
		r.i++
	}
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		r.i++
	}
	end := r.i
	if end == digits || end-digits > 1 && r.b[digits] == '0' {
		return nil // no digits, or a leading zero
	}
	if q {
		if r.i == len(r.b) || r.b[r.i] != '"' {
			return nil // spaces, escapes… in the quotes: protojson's rules
		}
		r.i++
	}
	return r.b[start:end]
}

// str reads a JSON string and returns its contents, unescaped: a slice of
// the input when there was nothing to unescape. Invalid UTF-8 and lone
// surrogates, which protojson refuses, make it give up.
func (r *reader) str() ([]byte, bool) {
	if !r.next(`"`) {
		return nil, false
	}
	var out []byte // nil until the first escape
	start := r.i
	for r.i < len(r.b) {
		switch c := r.b[r.i]; {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			if out == nil {
				return s, true
			}
			return append(out, s...), true
		case c < ' ':
			return nil, false
		case c == '\\':
			out = append(out, r.b[start:r.i]...)
			e, ok := r.escape()
			if !ok {
				return nil, false
			}
			out = utf8.AppendRune(out, e)
			start = r.i
		case c < utf8.RuneSelf:
			r.i++
		default:
			e, n := utf8.DecodeRune(r.b[r.i:])
			if e == utf8.RuneError && n == 1 {
				return nil, false
			}
			r.i += n
		}
	}
	return nil, false
}

// escape reads the escape at r.i, a surrogate pair as one.
func (r *reader) escape() (rune, bool) {
	if r.i+1 < len(r.b) {
		if k := strings.IndexByte(`"\/bfnrt`, r.b[r.i+1]); k >= 0 {
			r.i += 2
			return rune("\"\\/\b\f\n\r\t"[k]), true
		}
	}
	e := r.hex4()
	if utf16.IsSurrogate(e) { // the first of a pair, with the second next
		if e = utf16.DecodeRune(e, r.hex4()); e == utf8.RuneError {
			return 0, false
		}
	}
	return e, e >= 0
}

// hex4 reads a \uXXXX escape (as protojson parses it), or returns -1.
func (r *reader) hex4() rune {
	if len(r.b)-r.i < 6 || r.b[r.i] != '\\' || r.b[r.i+1] != 'u' {
		return -1
	}
	n, err := strconv.ParseUint(string(r.b[r.i+2:r.i+6]), 16, 16)
	if err != nil {
		return -1
	}
	r.i += 6
	return rune(n)
}
