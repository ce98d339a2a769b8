package datasets

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/routelab/routelab/policy"
)

// benchCSV is a RouterBench-shaped file of n rows with 11 models and long
// response columns, like the real one.
func benchCSV(n int) []byte {
	const k = 11
	var b bytes.Buffer
	b.WriteString(",sample_id,prompt,eval_name")
	for m := range k {
		fmt.Fprintf(&b, ",m%d", m)
	}
	for m := range k {
		fmt.Fprintf(&b, ",m%d|model_response", m)
	}
	for m := range k {
		fmt.Fprintf(&b, ",m%d|total_cost", m)
	}
	b.WriteString("\n")
	prompt := `"` + strings.Repeat(`Which is right? ""A"", ""B"", ...`+"\n", 40) + `"`
	for i := range n {
		fmt.Fprintf(&b, "%d,s.%d,%s,task%d", i, i, prompt, i%3)
		for m := range k {
			fmt.Fprintf(&b, ",%d.0", (i+m)%2)
		}
		for range k {
			b.WriteString(`,"['` + strings.Repeat("answer ", 50) + `']"`)
		}
		for m := range k {
			fmt.Fprintf(&b, ",%g", 1e-5*float64(m+1))
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func BenchmarkParseRouterBench(b *testing.B) {
	data := benchCSV(1000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var t Table
		if err := ParseRouterBench(bytes.NewReader(data), "bench.csv", &t); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	var t Table
	if err := ParseRouterBench(bytes.NewReader(benchCSV(2000)), "bench.csv", &t); err != nil {
		b.Fatal(err)
	}
	enc, err := policy.NewEncoder(policy.EncoderSpec{Intercept: true, Tasks: t.Tasks(), TokenBuckets: policy.DefaultTokenBuckets})
	if err != nil {
		b.Fatal(err)
	}
	for _, spec := range []string{"thompson=seed:1", "linucb"} {
		b.Run(spec, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := policy.NewBuiltinRegistry().NewFromString(spec)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Evaluate(context.Background(), &t, p, Opts{Seed: 1, Shuffle: true, Encoder: enc}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(t.Rows)), "ns/decision")
		})
	}
}
