package cloudsim

import (
	"encoding/json"
	"strings"
)

// bodyFields says, by dotted path, what the emulator does with the fields of
// a request body it models only in part: true descends into an object,
// false skips a field that is modelled (read into the fixture) or read-only
// (which ARM ignores on writes). Every other field is unmodelled and kept
// verbatim, so that what a client wrote comes back on reads, and a
// read-modify-write that loses a field shows as lost.
type bodyFields map[string]bool

// unmodelled returns the unmodelled fields of the JSON object raw by dotted
// path, or nil when there are none.
func (f bodyFields) unmodelled(raw json.RawMessage) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	var walk func(raw json.RawMessage, prefix string) error
	walk = func(raw json.RawMessage, prefix string) error {
		var o map[string]json.RawMessage
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		for key, value := range o {
			path := prefix + key
			descend, known := f[path]
			switch {
			case !known:
				out[path] = value
			case descend && string(value) != "null":
				if err := walk(value, path+"."); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if len(raw) == 0 {
		return nil, nil
	}
	if err := walk(raw, ""); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// overlay writes unmodelled fields back into a rendered object: each goes
// into the object of the longest path it lies under that f descends into,
// so keys that themselves contain dots stay whole.
func (f bodyFields) overlay(o obj, fields map[string]json.RawMessage) {
	for path, value := range fields {
		parent, key := "", path
		for p, descend := range f {
			if descend && strings.HasPrefix(path, p+".") && len(p) > len(parent) {
				parent, key = p, path[len(p)+1:]
			}
		}
		into := o
		if parent != "" {
			for _, step := range strings.Split(parent, ".") {
				next, ok := into[step].(obj)
				if !ok {
					next = obj{}
					into[step] = next
				}
				into = next
			}
		}
		into[key] = value
	}
}
