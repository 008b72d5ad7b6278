package config

import (
	"testing"

	"github.com/tokend/tokend/passhash"
)

// The example file parses, and its hashes are of the demo credentials its
// comment names.
func TestExampleFile(t *testing.T) {
	c, err := Load("../tokend.example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := passhash.Verify(c.Users[0].PasswordHash, "wonderland"); err != nil {
		t.Errorf("alice: %v", err)
	}
	secrets := map[string]string{"1001": "web-demo-secret", "m2m-svc": "m2m-demo-secret"}
	for _, cl := range c.Clients {
		if s, ok := secrets[cl.ID]; ok {
			if err := passhash.Verify(cl.SecretHash, s); err != nil {
				t.Errorf("client %s: %v", cl.ID, err)
			}
		}
	}
}
