package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/pipeline"
)

// progress renders a build's events: "plain" prints a line per finished
// step, "tty" also keeps a live line for the running step, "json" prints
// one JSON object per event.
type progress struct {
	w     io.Writer
	mode  string
	total int // stages in the build (stageCount), the assembler not among them

	mu      sync.Mutex
	n       int             // stages reported so far
	fetched map[string]bool // sources whose download was reported done
	live    string          // the running step's line, redrawn by the ticker
	started time.Time
	stop    chan struct{}
	done    chan struct{}
}

func newProgress(w io.Writer, mode string, total int) *progress {
	p := &progress{w: w, mode: mode, total: total}
	if mode == "tty" {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.tick()
	}
	return p
}

// stageCount is how many stages a build has, its build pipelines'
// included. The assembler is not one of them: its line is unnumbered, so
// counting it made the last stage [8/9] and the header say 9 stages.
func stageCount(p *pipeline.Plan) int {
	n := len(p.Stages)
	if p.Build != nil {
		n += stageCount(p.Build)
	}
	return n
}

// header is the line a human-readable build starts with.
func (p *progress) header(file string, plan *pipeline.Plan, store string) {
	if p.mode == "json" {
		return
	}
	what := fmt.Sprintf("%d stages", p.total)
	if p.total == 1 {
		what = "1 stage"
	}
	if plan.Assembler != nil {
		what += " and the " + plan.Assembler.Name + " assembler"
	}
	fmt.Fprintf(p.w, "kiln: building %s (%s) in %s\n", displayFile(file), what, store)
}

// tick redraws the live line, so a long stage shows it is alive.
func (p *progress) tick() {
	defer close(p.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.live != "" {
				fmt.Fprintf(p.w, "\r\033[K%s %s", p.live, time.Since(p.started).Round(100*time.Millisecond))
			}
			p.mu.Unlock()
		}
	}
}

// Close stops the live line.
func (p *progress) Close() {
	if p.stop != nil {
		close(p.stop)
		<-p.done
	}
}

func (p *progress) event(e pipeline.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "json" {
		p.jsonEvent(e)
		return
	}
	switch e.Kind {
	case pipeline.StageStarted, pipeline.AssemblerStarted:
		p.live = "  " + stepLabel(e.Result, p.n+1, p.total) + "  running"
		p.started = time.Now()
	case pipeline.StageFinished, pipeline.AssemblerFinished:
		if e.Kind == pipeline.StageFinished {
			p.n++
		}
		if p.live != "" && p.mode == "tty" {
			fmt.Fprint(p.w, "\r\033[K")
		}
		p.live = ""
		fmt.Fprintln(p.w, "  "+stepLine(e.Result, p.n, p.total))
	case pipeline.Waiting:
		fmt.Fprintf(p.w, "  waiting for another kiln making %s\n", shortID(e.ID))
	case pipeline.SourceProgress:
		finished := e.Total > 0 && e.Done == e.Total
		if e.Cached || (finished && p.fetched[e.File.Checksum]) {
			return // the reader reports the end again at EOF
		}
		if finished {
			if p.fetched == nil {
				p.fetched = map[string]bool{}
			}
			p.fetched[e.File.Checksum] = true
		}
		if p.mode == "tty" {
			fmt.Fprintf(p.w, "\r\033[K  fetching %s  %s", shortSum(e.File.Checksum), bytesOf(e.Done, e.Total))
			if finished {
				fmt.Fprintln(p.w)
			}
		} else if finished {
			fmt.Fprintf(p.w, "  fetched %s  %s\n", shortSum(e.File.Checksum), formatSize(e.Total))
		}
	}
}

func (p *progress) jsonEvent(e pipeline.Event) {
	kinds := map[pipeline.EventKind]string{
		pipeline.StageStarted: "stage-started", pipeline.StageLog: "stage-log", pipeline.StageFinished: "stage-finished",
		pipeline.AssemblerStarted: "assembler-started", pipeline.AssemblerFinished: "assembler-finished",
		pipeline.SourceProgress: "source-progress", pipeline.Waiting: "waiting",
	}
	out := map[string]any{"event": kinds[e.Kind]}
	if e.Result != nil {
		out["stage"] = stageJSON(e.Result)
	}
	switch e.Kind {
	case pipeline.StageLog:
		// The engine has cleaned and bounded the stage's output already
		// (engine.Config.OutputLimit); this keeps a consumer that prints
		// the field raw safe from anything that reached here otherwise.
		out["log"] = engine.StripControls(string(e.Log))
		delete(out, "stage")
		out["name"], out["id"] = e.Result.Name, e.Result.ID
	case pipeline.Waiting:
		out["id"] = e.ID
	case pipeline.SourceProgress:
		out["checksum"], out["url"], out["done"], out["total"], out["cached"] = e.File.Checksum, e.File.URL, e.Done, e.Total, e.Cached
	}
	b, _ := json.Marshal(out)
	fmt.Fprintln(p.w, string(b))
}

func stepLabel(r *pipeline.StageResult, n, total int) string {
	// A user stage's name is its file's name, which may hold escape
	// sequences; they must not reach the terminal.
	name := engine.StripControls(r.Name)
	if r.Pipeline != "" {
		name = r.Pipeline + ": " + name
	}
	if r.Index < 0 {
		return fmt.Sprintf("%-44s", "assembler "+name)
	}
	return fmt.Sprintf("[%d/%d] %-38s", n, total, name)
}

// stepLine is the line a finished stage leaves: name, short id, what
// happened, duration.
func stepLine(r *pipeline.StageResult, n, total int) string {
	var status string
	switch {
	case r.Err != nil:
		status = "FAILED"
	case r.Cached:
		status = "cached"
	default:
		status = "ran"
	}
	line := fmt.Sprintf("%s %s  %-6s", stepLabel(r, n, total), shortID(r.ID), status)
	if !r.Cached {
		line += "  " + r.Duration.Round(time.Millisecond).String()
	}
	var notes []string
	if r.Prepare > 250*time.Millisecond {
		notes = append(notes, r.Prepare.Round(10*time.Millisecond).String()+" copying the tree from the last commit")
	}
	if r.Setup > 250*time.Millisecond {
		notes = append(notes, r.Setup.Round(10*time.Millisecond).String()+" loading the stage module, compiled once per store")
	}
	if r.Commit > 250*time.Millisecond {
		notes = append(notes, "committed in "+r.Commit.Round(10*time.Millisecond).String())
	}
	if r.Checkpointed {
		notes = append(notes, "checkpoint")
	}
	if r.Shadows {
		notes = append(notes, "user stage from "+engine.StripControls(r.Origin)+" replaces the built-in one")
	} else if r.Origin != "" && r.Origin != "built-in" {
		notes = append(notes, "from "+engine.StripControls(r.Origin))
	}
	if r.Unvalidated && !r.Cached {
		notes = append(notes, "options not validated: the module carries no schema")
	}
	if len(notes) > 0 {
		line += "  (" + strings.Join(notes, "; ") + ")"
	}
	return line
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func shortSum(sum string) string {
	algo, hex, ok := strings.Cut(sum, ":")
	if !ok || len(hex) < 12 {
		return sum
	}
	return algo + ":" + hex[:12]
}

func bytesOf(done, total int64) string {
	if total <= 0 {
		return formatSize(done)
	}
	return fmt.Sprintf("%s / %s", formatSize(done), formatSize(total))
}
