package persistence_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestLoadSession(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		snaps := persistence.NewSnapshotStore(db)
		msgs := persistence.NewMessageStore(db)
		conv := seedConversation(t, db, seedUser(t, db).ID)
		if _, _, err := snaps.LoadSession(ctx, "session", conv.ID); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("LoadSession without a snapshot = %v, want ErrNotFound", err)
		}
		at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		appendSeq := func(seq int64) {
			t.Helper()
			if _, err := msgs.Insert(ctx, persistence.Message{ConversationID: conv.ID, Seq: seq, Role: "user", Content: "m"}); err != nil {
				t.Fatal(err)
			}
		}
		appendSeq(1)
		appendSeq(2)
		state := []byte(`{"last_seq":2}`)
		if err := snaps.Save(ctx, persistence.Snapshot{Kind: "session", Identity: conv.ID, Version: 2, State: state, UpdatedAt: at}, 0); err != nil {
			t.Fatal(err)
		}
		// Another kind with the same identity is another snapshot.
		if err := snaps.Save(ctx, persistence.Snapshot{Kind: "other", Identity: conv.ID, Version: 1, State: []byte("x")}, 0); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			kind   string
			append int64 // a seq appended before the load, 0 for none
			want   int64 // the snapshot's version
			behind bool
		}{
			{kind: "session", want: 2},
			{kind: "session", append: 3, want: 2, behind: true},
			{kind: "other", want: 1, behind: true},
		} {
			if tc.append > 0 {
				appendSeq(tc.append)
			}
			snap, behind, err := snaps.LoadSession(ctx, tc.kind, conv.ID)
			if err != nil || snap.Version != tc.want || behind != tc.behind || snap.Kind != tc.kind || snap.Identity != conv.ID {
				t.Fatalf("LoadSession(%s) after appending %d = %+v, %v, %v; want version %d, behind %v",
					tc.kind, tc.append, snap, behind, err, tc.want, tc.behind)
			}
			if tc.kind == "session" && (string(snap.State) != string(state) || !snap.UpdatedAt.Equal(at)) {
				t.Fatalf("snapshot = %+v", snap)
			}
		}
	})
}
