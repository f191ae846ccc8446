// Package atomicfile writes files that readers see whole or not at all:
// the ready files and fault-count files other processes poll.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes content to path through a temporary sibling renamed over
// it, creating path's directory if needed.
func Write(path, content string) error {
	tmp := path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
