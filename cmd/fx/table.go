package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// table is a table of tab-separated cells whose rows may carry notes:
// lines printed under the row, indented, outside the columns. A tabwriter
// alone would end its columns at such a line and align the rows after it
// apart from those before.
type table struct {
	rows  []string
	notes [][]string
}

// row adds a row of cells (joined by tabs) and its notes.
func (t *table) row(cells string, notes ...string) {
	t.rows = append(t.rows, strings.ReplaceAll(cells, "\n", " "))
	t.notes = append(t.notes, notes)
}

// write aligns the rows and writes them, each followed by its notes.
func (t *table) write(w io.Writer) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, r := range t.rows {
		fmt.Fprintln(tw, r)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var out strings.Builder
	for i, line := range strings.SplitAfter(b.String(), "\n") {
		out.WriteString(line)
		if i < len(t.notes) {
			for _, n := range t.notes[i] {
				fmt.Fprintf(&out, "  %s\n", strings.ReplaceAll(strings.TrimRight(n, "\n"), "\n", "\n  "))
			}
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}
