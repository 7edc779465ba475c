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
