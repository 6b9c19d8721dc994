package cloudsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// tokenLifetime matches managed-identity tokens, which live about a day.
const tokenLifetime = 24 * time.Hour

// tokenKey signs issued tokens. Nothing verifies the signature (the ARM side
// accepts any well-formed, unexpired token for ARM); it only makes tokens
// look like the HS256 JWTs JWT libraries expect.
var tokenKey = []byte("cloudsim-not-a-secret")

// serveManagedIdentityToken is the managed-identity endpoint as Azure App
// Service exposes it (IDENTITY_ENDPOINT/IDENTITY_HEADER), which azidentity's
// ManagedIdentityCredential calls through MSAL: GET with api-version,
// resource and optionally client_id, object_id or mi_res_id, and the
// X-IDENTITY-HEADER secret; the answer carries expires_on as a string of
// epoch seconds.
func (s *Sim) serveManagedIdentityToken(w http.ResponseWriter, r *http.Request) {
	s.handle(w, r, "ManagedIdentity.GetToken", writeIdentityError, func(w http.ResponseWriter) {
		q := r.URL.Query()
		resource := q.Get("resource")
		switch {
		case r.Method != http.MethodGet:
			writeIdentityError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET")
			return
		case r.Header.Get("X-IDENTITY-HEADER") == "":
			writeIdentityError(w, http.StatusBadRequest, "BadRequest", "the X-IDENTITY-HEADER header is required")
			return
		case q.Get("api-version") == "" || resource == "":
			writeIdentityError(w, http.StatusBadRequest, "BadRequest", "the api-version and resource query parameters are required")
			return
		}
		now := time.Now()
		identity := s.tokenIdentity()
		token, expires := issueToken(resource, s.azure.tenant, identity, now)
		clientID := firstNonEmpty(q.Get("client_id"), derivedUUID("client/"+identity.ObjectID))
		writeJSON(w, http.StatusOK, obj{
			"access_token": token, "expires_on": strconv.FormatInt(expires.Unix(), 10),
			"resource": resource, "token_type": "Bearer", "client_id": clientID,
		})
	})
}

// writeIdentityError renders an error as App Service's identity endpoint does.
func writeIdentityError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, obj{"statusCode": status, "message": code + ": " + message})
}

// issueToken mints a JWT whose claims say who the caller is: aud, tid, oid
// and upn, as the provider reads them for a grant's requestor.
func issueToken(resource, tenant string, id Identity, now time.Time) (string, time.Time) {
	exp := now.Add(tokenLifetime)
	claims, _ := json.Marshal(obj{
		"aud": resource, "iss": "https://sts.windows.net/" + tenant + "/", "iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
		"tid": tenant, "oid": id.ObjectID, "sub": id.ObjectID, "upn": id.UPN, "unique_name": id.UPN, "ver": "1.0",
	})
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, tokenKey)
	mac.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(mac.Sum(nil)), exp
}

// armAudiences are the audiences ARM accepts. The public cloud's are ARM's
// own list; the US Government and China ones are accepted too because the
// provider keeps its environment's audience when pointed at the emulator.
var armAudiences = []string{
	"https://management.core.windows.net/", "https://management.core.windows.net",
	"https://management.azure.com/", "https://management.azure.com",
	"https://management.core.usgovcloudapi.net/", "https://management.usgovcloudapi.net",
	"https://management.core.chinacloudapi.cn/", "https://management.chinacloudapi.cn",
}

// checkBearer authenticates an ARM request as ARM's front door does, with
// the same error codes: a missing or malformed Authorization header, an
// unreadable, expired or wrong-audience token.
func checkBearer(r *http.Request, tenant string) *armError {
	fail := func(code, description, format string, args ...any) *armError {
		e := newARMError(http.StatusUnauthorized, code, format, args...)
		e.header = http.Header{}
		e.header.Set("WWW-Authenticate", fmt.Sprintf(
			`Bearer authorization_uri="https://login.microsoftonline.com/%s", error="invalid_token", error_description=%q`, tenant, description))
		return e
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return fail("AuthenticationFailed", "The authentication failed because of missing 'Authorization' header.",
			"Authentication failed. The 'Authorization' header is missing.")
	}
	scheme, token, found := strings.Cut(auth, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return fail("AuthenticationFailed", "The authentication failed because of invalid 'Authorization' header.",
			"Authentication failed. The 'Authorization' header is provided in an invalid format.")
	}
	var claims struct {
		Aud string  `json:"aud"`
		Exp float64 `json:"exp"`
	}
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[min(1, len(parts)-1)])
	if len(parts) != 3 || err != nil || json.Unmarshal(payload, &claims) != nil {
		return fail("InvalidAuthenticationToken", "The access token is invalid.", "The access token is invalid.")
	}
	now := time.Now().UTC()
	if expiry := time.Unix(int64(claims.Exp), 0).UTC(); !expiry.After(now) {
		return fail("ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.",
			"The access token expiry UTC time '%s' is earlier than current UTC time '%s'.", expiry.Format("1/2/2006 3:04:05 PM"), now.Format("1/2/2006 3:04:05 PM"))
	}
	if indexFold(armAudiences, claims.Aud) < 0 {
		return fail("InvalidAuthenticationTokenAudience", "The access token has been obtained from wrong audience or resource.",
			"The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s'.",
			claims.Aud, strings.Join(armAudiences[:4], "','"))
	}
	return nil
}
