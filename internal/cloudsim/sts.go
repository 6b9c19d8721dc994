package cloudsim

import (
	"fmt"
	"net/http"
	"strings"
)

// serveSTS answers sts:GetCallerIdentity with Options.Identity, so the
// provider can name the requestor of a grant.
func (s *Sim) serveSTS(w http.ResponseWriter, r *http.Request, action string, signed bool) {
	s.handle(w, r, action, s.writeSTSError, func(w http.ResponseWriter) {
		switch {
		case action != "GetCallerIdentity":
			s.writeSTSError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", action, stsVersion))
		case !signed:
			s.writeSTSError(w, http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
		default:
			account, arn := s.opts.Identity.AWSAccount, s.opts.Identity.AWSArn
			if account == "" {
				account = s.aws.fx.AccountID // set at load, never changed
			}
			if arn == "" {
				arn = "arn:aws:iam::" + account + ":root"
			}
			type result struct {
				Arn     string `xml:"Arn"`
				UserID  string `xml:"UserId"`
				Account string `xml:"Account"`
			}
			writeAWSXML(w, http.StatusOK, "GetCallerIdentityResponse", stsNamespace, &struct {
				Result    result `xml:"GetCallerIdentityResult"`
				RequestID string `xml:"ResponseMetadata>RequestId"`
			}{result{arn, stsUserID(arn, account), account}, s.aws.requestID()})
		}
	})
}

// stsUserID is the unique ID STS reports: the account for root, AROA…:session
// for an assumed role, AIDA… for an IAM user.
func stsUserID(arn, account string) string {
	id := strings.ToUpper(awsHash("userid/" + arn)) // AIDA/AROA + 17, like IAM's 21
	switch {
	case strings.HasSuffix(arn, ":root"):
		return account
	case strings.Contains(arn, ":assumed-role/"):
		return "AROA" + id + ":" + arn[strings.LastIndexByte(arn, '/')+1:]
	}
	return "AIDA" + id
}

func (s *Sim) writeSTSError(w http.ResponseWriter, status int, code, message string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	type xmlError struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	writeAWSXML(w, status, "ErrorResponse", stsNamespace, &struct {
		Error     xmlError `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{xmlError{typ, code, message}, s.aws.requestID()})
}
