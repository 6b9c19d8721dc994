package jit

// Severity tells whether a finding stops the change (an error) or is only
// reported (a warning).
type Severity int

const (
	SeverityWarning Severity = iota
	SeverityError
)

// Finding is something the planners and the engine found, returned as data
// so that the provider can turn it into a diagnostic and the commands into
// their own output. Path addresses the attribute it is about, in the same
// form as FieldError.Path ({"port", 1, "number"}); nil means the resource
// as a whole.
type Finding struct {
	Severity Severity
	Path     []any
	Summary  string
	Detail   string
}

// Warning is a warning finding about the attribute at path.
func Warning(summary, detail string, path ...any) Finding {
	return Finding{Severity: SeverityWarning, Path: path, Summary: summary, Detail: detail}
}

// Error is an error finding about the attribute at path.
func Error(summary, detail string, path ...any) Finding {
	return Finding{Severity: SeverityError, Path: path, Summary: summary, Detail: detail}
}

// Finding is the field error as an error finding.
func (e FieldError) Finding() Finding {
	return Finding{Severity: SeverityError, Path: e.Path, Summary: e.Summary, Detail: e.Detail}
}

// HasError reports whether any finding is an error.
func HasError(findings []Finding) bool {
	for _, f := range findings {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}
