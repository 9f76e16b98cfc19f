// tlogcheck: an independent check of lapor-sla's Merkle log, with Go's golang.org/x/mod/sumdb
// (the checksum database's own tlog and note packages).
//
// It reads one JSON object on stdin:
//
//	{"records": ["<hex record hash>", ...], "old_size": M,
//	 "inclusion": [{"index": I, "proof": ["<base64>", ...]}],
//	 "consistency": ["<base64>", ...],
//	 "note": "<signed checkpoint text>", "verifier": "<note verifier key>"}
//
// and prints one JSON object: the tree hashes of all records and of the first M, its own
// inclusion and consistency proofs, whether ours check, and whether the note verifies.
package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index int64    `json:"index"`
	Proof []string `json:"proof"`
}

type input struct {
	Records     []string    `json:"records"`
	OldSize     int64       `json:"old_size"`
	Inclusion   []inclusion `json:"inclusion"`
	Consistency []string    `json:"consistency"`
	Note        string      `json:"note"`
	Verifier    string      `json:"verifier"`
}

type output struct {
	Root           string     `json:"root"`
	OldRoot        string     `json:"old_root"`
	InclusionOK    []bool     `json:"inclusion_ok"`
	InclusionGo    [][]string `json:"inclusion_go"`
	ConsistencyOK  bool       `json:"consistency_ok"`
	ConsistencyGo  []string   `json:"consistency_go"`
	NoteOK         bool       `json:"note_ok"`
	NoteError      string     `json:"note_error,omitempty"`
	NoteText       string     `json:"note_text,omitempty"`
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tlogcheck:", err)
	os.Exit(1)
}

func decode(texts []string) []tlog.Hash {
	out := make([]tlog.Hash, len(texts))
	for i, t := range texts {
		raw, err := base64.StdEncoding.DecodeString(t)
		if err != nil || len(raw) != tlog.HashSize {
			fail(fmt.Errorf("bad proof hash %q", t))
		}
		copy(out[i][:], raw)
	}
	return out
}

func encode(hashes []tlog.Hash) []string {
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail(err)
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = stored[x]
		}
		return out, nil
	})
	for n, text := range in.Records {
		data, err := hex.DecodeString(text)
		if err != nil {
			fail(err)
		}
		hashes, err := tlog.StoredHashes(int64(n), data, reader)
		if err != nil {
			fail(err)
		}
		stored = append(stored, hashes...)
	}
	size := int64(len(in.Records))
	var out output
	root, err := tlog.TreeHash(size, reader)
	if err != nil {
		fail(err)
	}
	out.Root = base64.StdEncoding.EncodeToString(root[:])
	for _, check := range in.Inclusion {
		data, _ := hex.DecodeString(in.Records[check.Index])
		leaf := tlog.RecordHash(data)
		ok := tlog.CheckRecord(decode(check.Proof), size, root, check.Index, leaf) == nil
		out.InclusionOK = append(out.InclusionOK, ok)
		own, err := tlog.ProveRecord(size, check.Index, reader)
		if err != nil {
			fail(err)
		}
		out.InclusionGo = append(out.InclusionGo, encode(own))
	}
	if in.OldSize > 0 {
		old, err := tlog.TreeHash(in.OldSize, reader)
		if err != nil {
			fail(err)
		}
		out.OldRoot = base64.StdEncoding.EncodeToString(old[:])
		out.ConsistencyOK = tlog.CheckTree(decode(in.Consistency), size, root, in.OldSize, old) == nil
		own, err := tlog.ProveTree(size, in.OldSize, reader)
		if err != nil {
			fail(err)
		}
		out.ConsistencyGo = encode(own)
	}
	if in.Note != "" {
		verifier, err := note.NewVerifier(in.Verifier)
		if err != nil {
			fail(err)
		}
		opened, err := note.Open([]byte(in.Note), note.VerifierList(verifier))
		if err != nil {
			out.NoteError = err.Error()
		} else {
			out.NoteOK = true
			out.NoteText = opened.Text
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}
