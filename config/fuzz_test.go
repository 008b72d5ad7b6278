package config

import (
	"os"
	"testing"
)

// FuzzParse checks that no input makes parse panic, and that whatever it
// accepts validates. Seeds: testdata/fuzz/FuzzParse and the example file.
func FuzzParse(f *testing.F) {
	if ex, err := os.ReadFile("../tokend.example.yaml"); err == nil {
		f.Add(ex)
	}
	f.Add([]byte(full))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(data, nil)
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("parse accepted a config that does not validate: %v", err)
			}
		}
	})
}
