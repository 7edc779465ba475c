package signatures_test

import (
	"context"
	"fmt"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
)

// The README's examples, kept compiling and running here.

type QuestionIn struct {
	Question string `json:"question" desc:"a yes/no question"`
}

type AnswerOut struct {
	Answer bool `json:"answer"`
}

func Example_readme() {
	ctx := context.Background()
	var model lm.LM = lm.NewProvider("offline", "kowai-offline", offline.New())

	sig := signatures.MustParse("question, context: list[str] -> answer: int")
	qa, err := signatures.NewChainOfThought(sig, signatures.PredictOptions{})
	if err != nil {
		panic(err)
	}
	res, err := signatures.Execute(ctx, model, qa, signatures.Values{
		"question": "How many moons has Mars?", "context": []string{"Phobos and Deimos orbit Mars."},
	})
	if err != nil {
		panic(err)
	}
	_, isInt := res.Outputs["answer"].(int)
	fmt.Println("answer is an int:", isInt, "- predictor calls:", len(res.Trace))

	ask, err := signatures.NewTyped[QuestionIn, AnswerOut](func(s signatures.Signature) (signatures.Module, error) {
		return signatures.NewPredict(s, signatures.PredictOptions{}), nil
	})
	if err != nil {
		panic(err)
	}
	out, err := ask.Call(signatures.WithRun(ctx, signatures.NewRun(model)), QuestionIn{Question: "Is the sky blue?"})
	if err != nil {
		panic(err)
	}
	fmt.Println("typed answer:", out.Answer)
	// Output:
	// answer is an int: true - predictor calls: 1
	// typed answer: true
}

// The README's "From DSPy" program: the struct-built signature equals the
// string form with the same instructions, and the Go side runs.
func Example_fromDSPy() {
	ctx := context.Background()
	var model lm.LM = lm.NewProvider("offline", "kowai-offline", offline.New())
	sig, err := signatures.New(
		[]signatures.Field{{Name: "question"}, {Name: "context", Type: signatures.List(signatures.String)}},
		[]signatures.Field{{Name: "answer", Desc: "often 1 to 5 words"},
			{Name: "confidence", Type: signatures.OptionalOf(signatures.Float)}},
		"Answer with a short fact.")
	if err != nil {
		panic(err)
	}
	parsed := signatures.MustParse("question, context: list[str] -> answer, confidence: float | None").
		WithInstructions("Answer with a short fact.")
	parsed, err = parsed.WithUpdatedField("answer", signatures.FieldUpdate{Desc: ptr("often 1 to 5 words")})
	if err != nil {
		panic(err)
	}
	qa, err := signatures.NewChainOfThought(sig, signatures.PredictOptions{})
	if err != nil {
		panic(err)
	}
	res, err := signatures.Execute(ctx, model, qa, signatures.Values{
		"question": "Who wrote Hamlet?", "context": []string{"Hamlet is a play by Shakespeare."}})
	if err != nil {
		panic(err)
	}
	_, hasConfidence := res.Outputs["confidence"]
	fmt.Println(sig.Equal(parsed), sig, hasConfidence)
	// Output: true question, context: list[str] -> answer, confidence: Optional[float] true
}

func ptr[T any](v T) *T { return &v }
