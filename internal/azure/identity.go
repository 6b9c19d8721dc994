package azure

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Requestor names the identity the provider acts as, for a grant's
// requestor: the user principal name of a person, otherwise the
// application or object ID of a service principal or managed identity. It
// reads the claims of the Resource Manager token the credential issues;
// the token is not verified here, since Resource Manager verifies it on
// every call made with it.
func (c *Client) Requestor(ctx context.Context) (string, error) {
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{c.scope}})
	if err != nil {
		return "", fmt.Errorf("getting a Resource Manager token: %w", err)
	}
	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("the Resource Manager token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", fmt.Errorf("decoding the Resource Manager token: %w", err)
	}
	var claims struct {
		UPN        string `json:"upn"`
		UniqueName string `json:"unique_name"`
		Preferred  string `json:"preferred_username"`
		AppID      string `json:"appid"`
		OID        string `json:"oid"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("decoding the Resource Manager token: %w", err)
	}
	for _, name := range []string{claims.UPN, claims.UniqueName, claims.Preferred} {
		if name != "" {
			return name, nil
		}
	}
	switch {
	case claims.AppID != "":
		return "app:" + claims.AppID, nil
	case claims.OID != "":
		return "oid:" + claims.OID, nil
	}
	return "", fmt.Errorf("the Resource Manager token names no user, application or object")
}
