package agents

import (
	"encoding/binary"
	"hash/fnv"
)

// MaxVariants is the most A/B variants an agent may carry.
const MaxVariants = 8

// AssignVariant returns the index of the variant a conversation of an agent runs
// with, given the variants' weights, or -1 when there are none (or no weight is
// positive). It is sticky and needs no storage: the FNV-64a hash of the agent ID
// and the conversation ID, modulo the total weight, falls into one variant's
// share, so every node picks the same one for as long as the weights stay as
// they are.
func AssignVariant(agentID, conversationID string, weights []int) int {
	var total uint64
	for _, w := range weights {
		if w > 0 {
			total += uint64(w)
		}
	}
	if total == 0 {
		return -1
	}
	h := fnv.New64a()
	// A length prefix keeps ("ab", "c") and ("a", "bc") apart.
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(agentID)))
	h.Write(n[:])
	h.Write([]byte(agentID))
	h.Write([]byte(conversationID))
	point := h.Sum64() % total
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		if point < uint64(w) {
			return i
		}
		point -= uint64(w)
	}
	return -1
}

// AssignCanary reports whether a conversation of an agent runs the agent's canary,
// which takes percent percent (0 to 100) of its conversations. Like AssignVariant it
// is sticky and needs no storage, but it hashes with its own salt, so the canary
// takes an even share of every variant's conversations.
func AssignCanary(agentID, conversationID string, percent int) bool {
	if percent <= 0 {
		return false
	}
	h := fnv.New64a()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(agentID)))
	h.Write([]byte("canary"))
	h.Write(n[:])
	h.Write([]byte(agentID))
	h.Write([]byte(conversationID))
	return h.Sum64()%100 < uint64(percent)
}
