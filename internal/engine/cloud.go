package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Cloud is a backend as the provider and the commands know it before any
// credential is read: its provider block and command-line flags, the form
// of its machine IDs, and how to connect. One list of them (internal/clouds)
// is all the provider, the commands and the validators read, so a new cloud
// is its package and a line in that list.
type Cloud struct {
	// Name names the provider block and the machines' Cloud: "azure".
	Name string
	// Title names the cloud in messages: "Azure".
	Title string
	// Description documents the provider block.
	Description string
	// Settings are the provider block's attributes and the commands' flags.
	Settings []Setting
	// MachineIDForm describes the cloud's machine IDs in messages.
	MachineIDForm string
	// OwnsMachineID recognises one of the cloud's machine IDs by its form.
	OwnsMachineID func(id string) bool
	// Connect builds the backend from the settings, by Setting.Name (an
	// unset one is ""). An error about one setting wraps a SettingError.
	Connect func(ctx context.Context, settings map[string]string, userAgent string) (Backend, error)
}

// Setting is one attribute of a cloud's provider block, one flag of the
// commands that scan it, or both.
type Setting struct {
	// Name is the provider block's attribute and the key Connect reads.
	Name string
	// Description documents the attribute; "" keeps it out of the block
	// (a flag of the commands only).
	Description string
	// OneOf, when set, are the only values accepted.
	OneOf []string
	// Flag is the commands' flag ("subscription" for -subscription) and
	// Usage its help; "" keeps it off the command line.
	Flag, Usage string
	// Env is the environment variable read when the setting is unset.
	Env string
	// Selects tells that a value for it makes the commands scan the
	// cloud; a flag that does not select needs one that does.
	Selects bool
}

// FromEnv is the setting's value from its environment variable, if any.
func (s Setting) FromEnv() string {
	if s.Env == "" {
		return ""
	}
	return os.Getenv(s.Env)
}

// SettingError is a cloud's configuration refused for one setting.
type SettingError struct {
	Setting string
	Err     error
}

func (e *SettingError) Error() string { return e.Setting + ": " + e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

// RefusedSetting names the setting err refuses, or "".
func RefusedSetting(err error) string {
	var se *SettingError
	if errors.As(err, &se) {
		return se.Setting
	}
	return ""
}

// CloudOfMachine finds the cloud whose machine IDs have id's form.
func CloudOfMachine(clouds []Cloud, id string) (Cloud, error) {
	forms := make([]string, 0, len(clouds))
	for _, c := range clouds {
		if c.OwnsMachineID(id) {
			return c, nil
		}
		forms = append(forms, c.MachineIDForm)
	}
	switch len(forms) {
	case 0:
		return Cloud{}, fmt.Errorf("%q: no cloud is registered", id)
	case 1:
		return Cloud{}, fmt.Errorf("%q is not %s", id, forms[0])
	case 2:
		return Cloud{}, fmt.Errorf("%q is neither %s nor %s", id, forms[0], forms[1])
	}
	return Cloud{}, fmt.Errorf("%q is none of %s or %s", id, strings.Join(forms[:len(forms)-1], ", "), forms[len(forms)-1])
}
