package cliniko

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Business is one of a Cliniko account's businesses (its locations), as
// GET /businesses reports it. A key sees the businesses of its own account
// only, so their ids tell which account a key belongs to (Cliniko exposes
// no account id).
type Business struct {
	ID           string
	BusinessName string
	// DisplayName is the name Cliniko shows patients; often the same as
	// BusinessName, sometimes empty.
	DisplayName string
	// CountryCode is ISO 3166-1 alpha-2 in upper case ("AU", "GB"); "" when
	// Cliniko has none.
	CountryCode string
	// TimeZone is Cliniko's label for the time zone ("Sydney").
	TimeZone string
	// TimeZoneIdentifier is the IANA name ("Australia/Sydney"), sent by
	// accounts with advanced time-zone support; "" otherwise. Not checked
	// here: the caller loads it and decides what to do when it cannot.
	TimeZoneIdentifier string
}

// Name is the business's name for display: DisplayName, else BusinessName.
func (b Business) Name() string {
	if n := strings.TrimSpace(b.DisplayName); n != "" {
		return n
	}
	return strings.TrimSpace(b.BusinessName)
}

type wireBusiness struct {
	ID                 flexID     `json:"id"`
	BusinessName       flexString `json:"business_name"`
	DisplayName        flexString `json:"display_name"`
	CountryCode        flexString `json:"country_code"`
	TimeZone           flexString `json:"time_zone"`
	TimeZoneIdentifier flexString `json:"time_zone_identifier"`
}

type wireBusinessPage struct {
	Businesses []wireBusiness `json:"businesses"`
	Links      wireLinks      `json:"links"`
}

// decodeBusinessPage decodes a GET /businesses answer.
func decodeBusinessPage(body []byte) ([]Business, string, error) {
	var w wireBusinessPage
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, "", fmt.Errorf("decode businesses page: %w", err)
	}
	out := make([]Business, 0, len(w.Businesses))
	for _, b := range w.Businesses {
		if b.ID == "" {
			return nil, "", fmt.Errorf("decode businesses page: a business without an id")
		}
		out = append(out, Business{
			ID: string(b.ID), BusinessName: strings.TrimSpace(string(b.BusinessName)),
			DisplayName: strings.TrimSpace(string(b.DisplayName)),
			CountryCode: strings.ToUpper(strings.TrimSpace(string(b.CountryCode))),
			TimeZone:    strings.TrimSpace(string(b.TimeZone)), TimeZoneIdentifier: strings.TrimSpace(string(b.TimeZoneIdentifier)),
		})
	}
	return out, w.Links.Next, nil
}

// ListBusinesses returns every business of the key's account:
// GET /businesses?per_page=100, one request per page of 100 (nearly always
// one), following links.next on Cliniko's own host only. Every role may
// read them. A.UserID should be known (from GetUser) so the requests count
// against that user's budget.
func (c *Client) ListBusinesses(ctx context.Context, a Auth) ([]Business, error) {
	const op = "list_businesses"
	shard, err := c.shard(op, a)
	if err != nil {
		return nil, err
	}
	base := c.baseURL(shard)
	q := url.Values{}
	q.Set("per_page", "100")
	next := base + "/businesses?" + q.Encode()
	seen := map[string]bool{}
	out := []Business{}
	for next != "" && !seen[next] {
		seen[next] = true
		cur := next
		res, err := c.do(ctx, a, shard, request{op: op, method: http.MethodGet, url: cur,
			path: "/businesses", limited: true, retries: c.cfg.GetRetries})
		if err != nil {
			return nil, err
		}
		page, link, err := decodeBusinessPage(res.body)
		if err != nil {
			return nil, decodeError(op, res.status, err)
		}
		out = append(out, page...)
		next = ""
		if link != "" {
			if next, err = sameOrigin(op, base, cur, link); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
