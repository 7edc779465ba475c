package signatures

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// anchoredMarkerRE matches a marker at the start of the unprocessed text.
var anchoredMarkerRE = regexp.MustCompile(`^\[\[ ## (\w+) ## \]\]`)

// fieldStreamer follows a streamed reply and forwards only the text of one
// output field, without its marker and surrounding whitespace. Markers may
// be split across chunks: text that could still become a marker is held
// back until the next chunk decides.
type fieldStreamer struct {
	field string
	emit  func(ctx context.Context, chunk string) error

	buf     []byte
	pos     int
	cur     string
	done    bool
	started bool
	pending string // whitespace held until more text follows it
	emitted bool
}

func (s *fieldStreamer) write(ctx context.Context, chunk []byte) error {
	s.buf = append(s.buf, chunk...)
	for !s.done {
		rest := s.buf[s.pos:]
		i := bytes.Index(rest, []byte("[["))
		if i < 0 {
			n := len(rest)
			if n > 0 && rest[n-1] == '[' {
				n--
			}
			n -= incompleteRune(rest[:n])
			s.pos += n
			return s.text(ctx, string(rest[:n]))
		}
		if err := s.text(ctx, string(rest[:i])); err != nil {
			return err
		}
		s.pos += i
		rest = s.buf[s.pos:]
		if m := anchoredMarkerRE.FindSubmatch(rest); m != nil {
			s.pos += len(m[0])
			s.enter(string(m[1]))
			continue
		}
		if partialMarker(rest) {
			return nil
		}
		s.pos++
		if err := s.text(ctx, "["); err != nil {
			return err
		}
	}
	return nil
}

// flush ends the stream: text held back as a possible marker was not one.
func (s *fieldStreamer) flush(ctx context.Context) error {
	rest := s.buf[s.pos:]
	s.pos = len(s.buf)
	return s.text(ctx, string(rest))
}

// enter switches to the section of field name; leaving the streamed field
// ends the stream, since its first occurrence is the one that counts.
func (s *fieldStreamer) enter(name string) {
	if s.cur == s.field {
		s.done = true
		return
	}
	s.cur = name
}

func (s *fieldStreamer) text(ctx context.Context, t string) error {
	if s.done || s.cur != s.field || t == "" {
		return nil
	}
	if !s.started {
		t = strings.TrimLeftFunc(t, unicode.IsSpace)
		if t == "" {
			return nil
		}
		s.started = true
	}
	body := strings.TrimRightFunc(t, unicode.IsSpace)
	if body == "" {
		s.pending += t
		return nil
	}
	out := s.pending + body
	s.pending = t[len(body):]
	s.emitted = true
	return s.emit(ctx, out)
}

// partialMarker reports whether b could be the beginning of a marker.
func partialMarker(b []byte) bool {
	if len(b) <= len(markerOpen) {
		return strings.HasPrefix(markerOpen, string(b))
	}
	if !bytes.HasPrefix(b, []byte(markerOpen)) {
		return false
	}
	b = b[len(markerOpen):]
	i := 0
	for i < len(b) && isWordByte(b[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	rest := string(b[i:])
	return len(rest) < len(markerClose) && strings.HasPrefix(markerClose, rest)
}

func isWordByte(c byte) bool {
	return c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// incompleteRune is the length of a UTF-8 sequence cut off at the end of b,
// held back so whitespace trimming sees whole runes.
func incompleteRune(b []byte) int {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if utf8.FullRune(b[len(b)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}
