// Command scaletool is bench/scale's helper: it seeds a private Redis with
// tokend's records directly (pipelined, with redisstore's key builders, so
// the records are the ones tokend writes), measures the M2M expiry sweep,
// and runs the big-owner operations against a running tokend.
//
//	scaletool seed -redis redis://127.0.0.1:6400 -n 1000000 > seed.txt
//	scaletool sweep -redis redis://127.0.0.1:6400 -wait 60s
//	scaletool bigowner -url http://127.0.0.1:8080 -bearer TOKEN -pid PID -op get
//	scaletool cluster -redis redis://127.0.0.1:7000?addr=...  (see bench/scale)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/tokend/tokend/redisstore"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: scaletool seed|sweep|bigowner|cluster|digest [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var run func(context.Context) error
	switch os.Args[1] {
	case "seed":
		run = seedFlags(fs)
	case "sweep":
		run = sweepFlags(fs)
	case "bigowner":
		run = bigOwnerFlags(fs)
	case "cluster":
		run = clusterFlags(fs)
	case "slowlog":
		run = slowlogFlags(fs)
	case "digest": // the hash tag redisstore gives an owner's keys
		fmt.Println(redisstore.NewSchema("").Digest(os.Args[2]))
		return
	default:
		fmt.Fprintln(os.Stderr, "scaletool: unknown command", os.Args[1])
		os.Exit(2)
	}
	_ = fs.Parse(os.Args[2:])
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "scaletool:", err)
		os.Exit(1)
	}
}
