// Package streams keeps the chunks of streamed chat replies where any
// gateway node can read them, so a client that lost its connection can
// resume a reply from its last chunk, on any node.
//
// # Streams and entries
//
// A stream has an ID, an owner (the user whose turn produces it) and a
// sequence of entries numbered from 1 without gaps: token entries carry one
// delta of the reply, a restart entry says that the turn is being produced
// again from the start (attempt 2, 3, ...), and the last entry is final:
// done (with the answer) or error (with the problem). A producer opens the
// stream with Begin, which says which attempt it is and the last sequence
// number already stored, then appends entries numbered on.
//
//	cur, err := store.Begin(ctx, streamID, userID)
//	err = store.Append(ctx, streamID, streams.Entry{Seq: cur.Last + 1, Kind: streams.KindToken, Delta: "Hel"})
//
// A producer that minted the stream's ID just now knows that nothing is
// stored under it: it calls Start instead, which creates the stream with its
// first entries in one step (one round trip to Redis instead of two).
//
// Readers call Follow, which hands them every entry after a sequence number,
// the stored ones first, then the live ones, and returns after the final
// entry.
//
// # Implementations
//
// Memory keeps streams in process, for a single node. Redis keeps each
// stream in a Redis stream with one message per appended batch, whose ID is
// the batch's last sequence number ("<seq>-1") and whose field "c" holds
// the batch compactly (the first number, then each token's delta as a JSON
// string, other entries as objects), trimmed to MaxLen entries and expiring
// TTL after its last append. The owner and the attempts count are in a
// meta hash, except for a stream that Start created with its first
// entries: that is one key, whose first message names the owner (field
// "o"), until a Begin, or a trim that could drop that message, writes the
// hash. A whole reply, created with a batch that ends with its final entry
// (a fast model's reply, often), is its meta hash alone, the batch in its
// field "c": a Redis stream costs Redis a 4 KiB node and twice the time to
// create, and a finished reply has nothing live to tail; a follower that
// awaits a stream not stored yet sets the stream's await key, which makes
// its producer write a Redis stream all the same, whose first message
// wakes the follower. The appends of many streams share one pipeline and
// one script run. Live entries reach a node's readers through one XREAD
// BLOCK loop per stream per node, fanned out in process, never one
// blocking connection per reader.
package streams
