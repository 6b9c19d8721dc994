package endpoint

import "testing"

func TestCheck(t *testing.T) {
	cases := []struct {
		raw      string
		insecure bool
		wantErr  bool
	}{
		{"https://management.azure.com", false, false},
		{"https://10.0.0.1:8443", false, false},
		{"http://127.0.0.1:8080", true, false},
		{"http://127.5.6.7", true, false},
		{"http://[::1]:9000", true, false},
		{"http://localhost:9000", true, false},
		{"http://LOCALHOST:9000", true, false},
		{"http://10.0.0.1:8080", false, true},
		{"http://example.com", false, true},
		{"http://127.0.0.1.nip.io", false, true},
		{"ftp://127.0.0.1", false, true},
		{"management.azure.com", false, true},
		{"", false, true},
	}
	for _, c := range cases {
		insecure, err := Check(c.raw)
		if (err != nil) != c.wantErr || insecure != c.insecure {
			t.Errorf("Check(%q) = %v, %v; want insecure=%v err=%v", c.raw, insecure, err, c.insecure, c.wantErr)
		}
	}
}
