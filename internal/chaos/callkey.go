package chaos

import (
	"os"
	"path/filepath"

	"github.com/dtxhq/dtx/callsig"
)

// writeCallKey makes the run's branch call key (HMAC, new per run) and
// writes it, readable by the owner only, where the coordinator and shop
// processes read it (--call-key-file): chaos runs with authenticated
// calls, as a deployment should.
func (r *runner) writeCallKey() error {
	key, err := callsig.Generate(callsig.AlgHMAC, "chaos")
	if err != nil {
		return err
	}
	r.callKeyFile = filepath.Join(r.cfg.Dir, "call.key")
	return os.WriteFile(r.callKeyFile, []byte(key.Encode()+"\n"), 0o600)
}
