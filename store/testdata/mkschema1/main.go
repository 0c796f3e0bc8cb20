// Command mkschema1 wrote testdata/schema1.db with nightshift's store at
// schema version 1, as it was at commit 0ebf4d5 (before migrations
// existed): two nights of the two-stage Jenkins setup (a rebuild, then a
// validation of its tag, which fails on ci_lint), a validation of a tag no
// rebuild recorded, a rebuild left running by a crash, outbox messages and
// the schedule's last fire time. It was run at that commit as
//
//	go run ./store/testdata/mkschema1 store/testdata/schema1.db
//
// and is kept to show how the file was made; the file is what counts.
package main

import (
	"fmt"
	"os"
	"time"

	"nightshift/store"
)

func main() {
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func write(path string) error {
	db, err := store.Open(path, time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)
	at := func(night int, min int) *time.Time {
		t := start.AddDate(0, 0, night).Add(time.Duration(min) * time.Minute)
		return &t
	}
	names := []string{"ci_base", "ci_lint"}
	commits := []string{"87bf32fe0c5d2a1b9e8f7a6b5c4d3e2f1a0b9c8d", "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"}
	for night := range 2 {
		tag := at(night, 0).Format("2006-01-02-15-04-05") + "-" + commits[night][:8]
		// The rebuild: nightshift run --no-validate.
		rebuild := &store.Run{Tag: tag, Commit: commits[night], Subject: fmt.Sprintf("change %d", night+1),
			Status: store.Succeeded, Trigger: "cli", Started: *at(night, 0), Finished: at(night, 30), Planned: names}
		for i, name := range names {
			stages := []store.Stage{}
			for j, st := range []string{"build", "push", "verify", "tag"} {
				stages = append(stages, store.Stage{Name: st, Status: store.Succeeded, Started: *at(night, i*10+j), Finished: at(night, i*10+j+1)})
			}
			rebuild.Images = append(rebuild.Images, store.ImageResult{Name: name, Status: store.Succeeded,
				Ref: "registry.example.org/ci-staging/" + name + ":" + tag, Digest: fmt.Sprintf("sha256:%064d", night*10+i),
				Tags: []string{tag, "latest"}, Started: at(night, i*10), Finished: at(night, i*10+4), Stages: stages,
				Log: fmt.Sprintf("logs/%d/%s.log", 2*night+1, name)})
		}
		if err := db.CreateRun(rebuild); err != nil {
			return err
		}
		// Its validation: nightshift validate --run N; ci_lint's tests fail.
		val := &store.Run{Kind: "validate", Tag: tag, Commit: commits[night], Subject: fmt.Sprintf("change %d", night+1),
			Status: store.Failed, Trigger: "cli", Started: *at(night, 40), Finished: at(night, 50), Planned: names}
		for i, name := range names {
			im := store.ImageResult{Name: name, Status: store.Succeeded, Ref: "registry.example.org/ci-staging/" + name + ":" + tag,
				Digest: fmt.Sprintf("sha256:%064d", night*10+i), Tags: []string{tag, tag + "-validated"},
				Started: at(night, 40+i*5), Finished: at(night, 44+i*5),
				Stages: []store.Stage{
					{Name: "pull", Status: store.Succeeded, Started: *at(night, 40+i*5), Finished: at(night, 41+i*5)},
					{Name: "test", Status: store.Succeeded, Started: *at(night, 41+i*5), Finished: at(night, 43+i*5)},
					{Name: "validated", Status: store.Succeeded, Started: *at(night, 43+i*5), Finished: at(night, 44+i*5)},
				},
				Validation: &store.Validation{Status: store.Succeeded, Tests: []store.TestResult{{Name: "shell", Kind: "command", Passed: true, Attempts: 1, Seconds: 0.2}}}}
			if name == "ci_lint" {
				im.Status, im.Error, im.Tags = store.Failed, "test: 1 of 1 tests failed", []string{tag}
				im.Stages = im.Stages[:2]
				im.Stages[1].Status, im.Stages[1].Error = store.Failed, "1 of 1 tests failed"
				im.Validation = &store.Validation{Status: store.Failed, Error: "1 of 1 tests failed",
					Tests: []store.TestResult{{Name: "flake8", Kind: "command", Attempts: 1, Seconds: 1.5, Errors: []string{"exit code 1"}}}}
			}
			val.Images = append(val.Images, im)
		}
		if err := db.CreateRun(val); err != nil {
			return err
		}
		if err := db.Enqueue(*val.Finished, store.Message{RunID: val.ID, Notifier: "discord", Payload: []byte(`{"event":"failure"}`)}); err != nil {
			return err
		}
	}
	// A validation of a tag no rebuild here recorded.
	other := &store.Run{Kind: "validate", Tag: "2026-11-01-02-00-00-feedface", Commit: "feedface", Status: store.Succeeded,
		Trigger: "cli", Started: *at(2, 0), Finished: at(2, 5), Planned: []string{"ci_base"},
		Images: []store.ImageResult{{Name: "ci_base", Status: store.Succeeded, Started: at(2, 0), Finished: at(2, 5),
			Validation: &store.Validation{Status: store.Succeeded}}}}
	if err := db.CreateRun(other); err != nil {
		return err
	}
	// Tonight's rebuild, left running by a crash.
	crashed := &store.Run{Tag: "2026-11-23-02-00-00-cafebabe", Commit: "cafebabe", Status: store.Running, Trigger: "cron",
		Started: *at(3, 0), Planned: names, Images: []store.ImageResult{{Name: "ci_base", Status: store.Running, Started: at(3, 0),
			Stages: []store.Stage{{Name: "build", Status: store.Running, Started: *at(3, 0)}}}}}
	if err := db.CreateRun(crashed); err != nil {
		return err
	}
	if err := db.UpdateMessage(1, func(m *store.Message) { m.Status, m.Done = store.Sent, at(0, 51) }); err != nil {
		return err
	}
	return db.SetLastFire(*at(3, 0))
}
