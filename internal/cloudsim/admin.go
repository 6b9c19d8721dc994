package cloudsim

import (
	"encoding/json"
	"net/http"
)

// The admin API is the emulator's own, not a cloud's:
//
//	GET    /_admin/state   the whole world as JSON (same shape as a fixture)
//	GET    /_admin/calls   {"operation": count}
//	GET    /_admin/calls/by-flow  {"flow": {"operation": count}}; the flow is
//	                       the jit-flow/<flow> token of the caller's User-Agent,
//	                       "" for calls without one
//	GET    /_admin/reads   {"object": reads of it alone} (see ObjectReads)
//	DELETE /_admin/calls   reset the counters (every view)
//	GET    /_admin/operations  every operation name faults can target
//	POST   /_admin/faults  install a Fault (JSON body, the fields of Fault;
//	                       unknown fields and values are refused with 400)
//	DELETE /_admin/faults  clear all faults
func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch r.Method + " " + r.URL.Path {
	case "GET /_admin/state":
		writeJSON(w, http.StatusOK, s.Snapshot())
	case "GET /_admin/calls":
		writeJSON(w, http.StatusOK, s.Calls())
	case "GET /_admin/calls/by-flow":
		writeJSON(w, http.StatusOK, s.CallsByFlow())
	case "GET /_admin/reads":
		writeJSON(w, http.StatusOK, s.ObjectReads())
	case "DELETE /_admin/calls":
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	case "GET /_admin/operations":
		writeJSON(w, http.StatusOK, Operations())
	case "POST /_admin/faults":
		var f Fault
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			http.Error(w, "body must be a Fault: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := f.check(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.InjectFault(f)
		w.WriteHeader(http.StatusNoContent)
	case "DELETE /_admin/faults":
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unknown admin route", http.StatusNotFound)
	}
}

// Snapshot returns the current world in fixture shape.
func (s *Sim) Snapshot() *Fixture {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Fixture{Azure: s.azure.snapshot(), AWS: s.aws.snapshot()}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
