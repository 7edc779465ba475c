package signatures

import (
	"testing"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
)

// TestOfflineModelNewTypes: the default offline model answers the new
// types (Optional, tuple, unions) in a form ParseReply accepts.
func TestOfflineModelNewTypes(t *testing.T) {
	model := lm.NewProvider("offline", "kowai-offline", offline.New())
	sig := MustParse("q -> a: Optional[int], b: tuple[int, str], c: int | str, d: str | None, e: Union[list[str], dict]")
	res, err := Execute(t.Context(), model, NewPredict(sig, PredictOptions{}), Values{"q": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 5 {
		t.Errorf("outputs %v", res.Outputs)
	}
}
