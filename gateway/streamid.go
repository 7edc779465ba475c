package gateway

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// streamKeyLabel is the HKDF label of the stream ID key derived from the JWT
// secret.
const streamKeyLabel = "kowai stream ids v1"

// DeriveStreamKey derives the key that signs stream IDs from the JWT secret
// (HKDF-SHA256), so every node of a cluster shares it without configuration.
func DeriveStreamKey(jwtSecret []byte) ([]byte, error) {
	key, err := hkdf.Key(sha256.New, jwtSecret, nil, streamKeyLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("derive stream key: %w", err)
	}
	return key, nil
}

// announcedGrace is how long after its minting a signed stream ID that the
// store does not hold yet is awaited by a resume before it answers 404:
// the producer's first write starts as its turn does and may take
// streamAppendTimeout, queued, plus a round trip of the same bound; the
// rest allows for the nodes' clocks to differ.
const announcedGrace = 2*streamAppendTimeout + 10*time.Second

// streamIDs mints stream IDs that a node may announce (in a response's
// headers) before the store holds their stream, and recognizes them.
//
// Such an ID is a version 8 UUID: the minting time in milliseconds (48
// bits, as in a version 7 UUID), 26 bits of nonce around the version and
// variant bits, and a 48-bit HMAC of those and the owner's user ID. A resume
// of a signed ID the store does not hold yet waits for the stream until
// announcedGrace after its minting; an ID that is not signed for the caller
// names no stream that could appear, and answers 404 at once.
type streamIDs struct {
	key []byte
	now func() time.Time
}

// newStreamIDs returns a minter signing with key; nil key means a random
// one, which only this process recognizes.
func newStreamIDs(key []byte) *streamIDs {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read never fails
	}
	return &streamIDs{key: key, now: time.Now}
}

// seal sets the version and variant bits of id, whose first ten bytes hold
// the time and nonce, and signs them for owner in its last six.
func (s *streamIDs) seal(id *uuid.UUID, owner string) {
	id[6] = 0x80 | id[6]&0x0f
	id[8] = 0x80 | id[8]&0x3f
	copy(id[10:], s.mac(id[:10], owner))
}

// mac is the signature of the ID's first ten bytes for owner.
func (s *streamIDs) mac(head []byte, owner string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte("stream\x00"))
	h.Write([]byte(owner))
	h.Write([]byte{0})
	h.Write(head)
	return h.Sum(nil)[:6]
}

// mint returns a new signed stream ID for owner.
func (s *streamIDs) mint(owner string) string {
	var id uuid.UUID
	putMillis(id[:6], s.now())
	_, _ = rand.Read(id[6:10]) // crypto/rand.Read never fails
	s.seal(&id, owner)
	return id.String()
}

// putMillis writes t's Unix time in milliseconds as 48 bits.
func putMillis(b []byte, t time.Time) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(t.UnixMilli()))
	copy(b, buf[2:])
}

// minted returns when signed stream ID id was minted for owner, and false
// when id is not one (another version, or not signed for owner).
func (s *streamIDs) minted(id, owner string) (time.Time, bool) {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 8 || u.Variant() != uuid.RFC4122 {
		return time.Time{}, false
	}
	if !hmac.Equal(u[10:], s.mac(u[:10], owner)) {
		return time.Time{}, false
	}
	var buf [8]byte
	copy(buf[2:], u[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(buf[:]))), true
}

// awaitUntil returns until when a resume by owner awaits stream id that the
// store does not hold: announcedGrace after a signed ID's minting (from now
// at the latest, should the minting node's clock run ahead), or the zero
// time for an ID that could not appear any more, or never could.
func (s *streamIDs) awaitUntil(id, owner string) time.Time {
	at, ok := s.minted(id, owner)
	if !ok {
		return time.Time{}
	}
	now := s.now()
	if at.After(now) {
		at = now
	}
	until := at.Add(announcedGrace)
	if !now.Before(until) {
		return time.Time{}
	}
	return until
}

// mintKey returns a new idempotency key for a streamed turn of owner sent
// without one: mintedKeyPrefix and a signed stream ID, from which forKey
// derives the turn's stream ID.
func (s *streamIDs) mintKey(owner string) string {
	return mintedKeyPrefix + s.mint(owner)
}

// forKey returns the stream ID of owner's turn in conversation keyed with
// key when key is one mintKey minted for owner: signed, with the key's
// minting time, and a nonce derived from the key and the conversation, so
// that a retry of the turn with that key, on any node, streams under the
// same ID, and the key reused in another conversation under another. It
// reports false for any other key.
func (s *streamIDs) forKey(owner, conversation, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, mintedKeyPrefix)
	if !ok {
		return "", false
	}
	if _, ok := s.minted(rest, owner); !ok {
		return "", false
	}
	k := uuid.MustParse(rest)
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte("stream of key\x00"))
	h.Write([]byte(conversation))
	h.Write([]byte{0})
	h.Write(k[:])
	var id uuid.UUID
	copy(id[:6], k[:6])
	copy(id[6:10], h.Sum(nil))
	s.seal(&id, owner)
	return id.String(), true
}
