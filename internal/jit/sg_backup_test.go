package jit

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestSGBackupTags_format(t *testing.T) {
	backup := []SGRule{sgr("sgr-1", "tcp", 0, 65535, "10.0.0.0/8", "office VPN")}
	remainders := []SGRule{sgr("", "tcp", 23, 65535, "10.0.0.0/8", "office VPN"), sgr("", "tcp", 0, 21, "10.0.0.0/8", "office VPN")}
	tags, err := SGBackupTags("prod-web", backup, remainders)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"jit:backup:" + PolicyHash("prod-web") + ":0": "v1=3+b=tcp=0=65535=10.0.0.0/8=office_VPN+r=tcp=0=21=.=.+r=tcp=23=65535=.=."}
	if !maps.Equal(tags, want) {
		t.Errorf("tags %q, want %q", tags, want)
	}
}

func TestSGBackupTags_escapesToTagSafeText(t *testing.T) {
	for desc, want := range map[string]string{
		"a_b (x)":            "a@5Fb_@28x@29",
		".":                  "@2E",
		"":                   "",
		"50%+=@ café\t":      "50@25@2B@3D@40_caf@C3@A9@09",
		"ops:team/alpha-1.2": "ops:team/alpha-1.2",
	} {
		if got := escapeSGTagText(desc); got != want {
			t.Errorf("escape(%q) = %q, want %q", desc, got, want)
		}
		if back, err := unescapeSGTagText(want); err != nil || back != desc {
			t.Errorf("unescape(%q) = %q, %v; want %q", want, back, err, desc)
		}
	}
}

func TestSGBackupTags_roundTrip(t *testing.T) {
	// Every character EC2 takes in a rule description, and a few it does not.
	descriptions := []string{"", ".", "..", "office VPN", " lead and trail ", "a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*", "=+@", "naïve ☃", strings.Repeat("x", 255)}
	sources := []string{"10.0.0.0/8", "0.0.0.0/0", "2001:db8::/32", "::/0", "pl-0123456789abcdef0", "sg-0123456789abcdef0"}
	var backup, remainders []SGRule
	for i, d := range descriptions {
		for j, s := range sources {
			backup = append(backup, sgr("", []string{"tcp", "6", "-1", "50", "icmp", "udp"}[(i+j)%6], i, i+j, s, d))
			remainders = append(remainders, sgr("", "udp", j, 1000, s, d))
		}
	}
	tags, err := SGBackupTags("a policy name, with / odd characters: é", append(backup, backup...), remainders)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) < 2 {
		t.Fatalf("%d tags; this backup should need several", len(tags))
	}
	for k, v := range tags {
		if len(v) > 256 || len(k) > 128 || strings.ContainsAny(v, " \t\n") || strings.HasSuffix(v, " ") {
			t.Errorf("tag %q=%q is not a valid EC2 tag, or holds whitespace", k, v)
		}
		if !IsSGBackupTag("a policy name, with / odd characters: é", k) || IsSGBackupTag("another policy", k) {
			t.Errorf("IsSGBackupTag(%q) is wrong", k)
		}
	}
	maps.Copy(tags, map[string]string{"Name": "web", "jit:backup:other:0": "v1=0"})
	gotBackup, gotRemainders, err := ParseSGBackupTags("a policy name, with / odd characters: é", tags)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotBackup, canonicalSGRules(backup)) || !slices.Equal(gotRemainders, canonicalSGRules(remainders)) {
		t.Errorf("round trip lost rules:\n%v\n%v", gotBackup, gotRemainders)
	}

	if tags, err := SGBackupTags("p", nil, nil); err != nil || len(tags) != 0 {
		t.Errorf("no rules: %v, %v; want no tags", tags, err)
	}
	if b, r, err := ParseSGBackupTags("p", map[string]string{"Name": "web"}); b != nil || r != nil || err != nil {
		t.Errorf("no backup tags: %v, %v, %v; want nothing", b, r, err)
	}
}

func TestSGBackupTags_tooLargeIsAnError(t *testing.T) {
	var backup []SGRule
	for i := range 60 {
		backup = append(backup, sgr("", "tcp", i, i, fmt.Sprintf("10.0.%d.0/24", i), fmt.Sprint(strings.Repeat("(", 250), i)))
	}
	_, err := SGBackupTags("prod-web", backup, nil)
	if err == nil || !strings.Contains(err.Error(), "prod-web") || !strings.Contains(err.Error(), "60 rules") || !strings.Contains(err.Error(), "at most 40 tags") {
		t.Errorf("error %v, want one naming the policy, the rules and the tag limit", err)
	}
}

func TestSGBackupTags_refusesSourcesItCouldNotReadBack(t *testing.T) {
	misfiled := SGRule{IPProtocol: "tcp", FromPort: 22, ToPort: 22, CIDRIPv4: "sg-0123456789abcdef0"}
	if _, err := SGBackupTags("p", []SGRule{misfiled}, nil); err == nil {
		t.Error("a group ID as an IPv4 CIDR was recorded; it would come back as a group")
	}
}

func TestParseSGBackupTags_damage(t *testing.T) {
	key := func(i int) string { return sgBackupTagKey("p", i) }
	for name, tags := range map[string]map[string]string{
		"missing piece":      {key(0): "v1=1+b=tcp=22=22=10.0.0.0/8=", key(2): "x"},
		"count disagrees":    {key(0): "v1=2+b=tcp=22=22=10.0.0.0/8="},
		"unknown version":    {key(0): "v2=1+b=tcp=22=22=10.0.0.0/8="},
		"short record":       {key(0): "v1=1+b=tcp=22=22=10.0.0.0/8"},
		"unknown kind":       {key(0): "v1=1+x=tcp=22=22=10.0.0.0/8="},
		"bad port":           {key(0): "v1=1+b=tcp=2x=22=10.0.0.0/8="},
		"bad escape":         {key(0): "v1=1+b=tcp=22=22=10.0.0.0/8=a@G1"},
		"cut escape":         {key(0): "v1=1+b=tcp=22=22=10.0.0.0/8=a@4"},
		"raw space":          {key(0): "v1=1+b=tcp=22=22=10.0.0.0/8=a b"},
		"ditto first":        {key(0): "v1=1+b=tcp=22=22=.=x"},
		"invalid rule":       {key(0): "v1=1+b=tcp=30=22=10.0.0.0/8="},
		"only the last part": {key(1): "v1=1+b=tcp=22=22=10.0.0.0/8="},
	} {
		if b, r, err := ParseSGBackupTags("p", tags); err == nil {
			t.Errorf("%s: parsed %v %v, want an error", name, b, r)
		}
	}
}

// FuzzParseSGBackupTags: whatever the tags hold, parsing never panics, and
// what it accepts is written back the same way.
func FuzzParseSGBackupTags(f *testing.F) {
	f.Add("v1=3+b=tcp=0=65535=10.0.0.0/8=office_VPN+r=tcp=0=21=.=.+r=tcp=23=65535=.=.", "")
	f.Add("v1=1+b=-1=-1=-1=pl-0123456789abcdef0=a@2B", "")
	f.Add("v1=2+b=tcp=22=22=2001:db8::/32=x+r=udp=1=", "2=.=.")
	f.Fuzz(func(t *testing.T, first, second string) {
		tags := map[string]string{sgBackupTagKey("p", 0): first}
		if second != "" {
			tags[sgBackupTagKey("p", 1)] = second
		}
		backup, remainders, err := ParseSGBackupTags("p", tags)
		if err != nil {
			return
		}
		again, err := SGBackupTags("p", backup, remainders)
		if err != nil {
			t.Fatalf("parsed %v %v, which cannot be written back: %v", backup, remainders, err)
		}
		b2, r2, err := ParseSGBackupTags("p", again)
		if err != nil || !slices.Equal(b2, canonicalSGRules(backup)) || !slices.Equal(r2, canonicalSGRules(remainders)) {
			t.Fatalf("rewritten %q does not read back: %v %v %v", again, b2, r2, err)
		}
	})
}

func TestSGRuleSourceRoundTrips(t *testing.T) {
	for _, r := range []SGRule{
		{IPProtocol: "tcp", FromPort: 22, ToPort: 22, CIDRIPv4: "10.0.0.0/8"},
		{IPProtocol: "tcp", FromPort: 22, ToPort: 22, CIDRIPv6: "2001:db8::/32"},
		{IPProtocol: "-1", FromPort: -1, ToPort: -1, PrefixListID: "pl-0123456789abcdef0"},
		{IPProtocol: "udp", FromPort: 0, ToPort: 65535, ReferencedGroupID: "sg-0123456789abcdef0", Description: "peers"},
	} {
		bare := r
		bare.CIDRIPv4, bare.CIDRIPv6, bare.PrefixListID, bare.ReferencedGroupID = "", "", "", ""
		if got := bare.WithSource(r.Source()); got != r {
			t.Errorf("WithSource(Source()) of %+v = %+v", r, got)
		}
	}
}
