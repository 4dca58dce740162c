package cliniko

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// GetUser returns the Cliniko user the key belongs to (GET /user, one
// request). It is the way to check a key: a bad key or a key used on the
// wrong shard gives cliniko_unauthorized.
func (c *Client) GetUser(ctx context.Context, a Auth) (User, error) {
	const op = "get_user"
	shard, err := c.shard(op, a)
	if err != nil {
		return User{}, err
	}
	res, err := c.do(ctx, a, shard, request{op: op, method: http.MethodGet,
		url: c.baseURL(shard) + "/user", path: "/user", limited: true, retries: c.cfg.GetRetries})
	if err != nil {
		return User{}, err
	}
	var w wireUser
	if err := json.Unmarshal(res.body, &w); err != nil || w.ID == "" {
		return User{}, decodeError(op, res.status, err)
	}
	return w.user(shard), nil
}

// GetPatient returns one patient (GET /patients/{id}, one request). An
// archived or unknown patient gives cliniko_not_found.
func (c *Client) GetPatient(ctx context.Context, a Auth, id string) (Patient, error) {
	const op = "get_patient"
	if err := checkID(op, "the patient id", id); err != nil {
		return Patient{}, err
	}
	shard, err := c.shard(op, a)
	if err != nil {
		return Patient{}, err
	}
	p := "/patients/" + id
	res, err := c.do(ctx, a, shard, request{op: op, method: http.MethodGet, url: c.baseURL(shard) + p,
		path: p, patientID: id, limited: true, retries: c.cfg.GetRetries})
	if err != nil {
		return Patient{}, err
	}
	pt, err := decodePatient(res.body)
	if err != nil {
		return Patient{}, decodeError(op, res.status, err)
	}
	return pt, nil
}

// PatientsUpdatedSince lists the (non-archived) patients changed after
// since, oldest change first, one page of up to 100 per request:
// GET /patients?q[]=updated_at:>since&sort=updated_at&per_page=100. A caller
// can advance its watermark after each page. since is sent in whole seconds,
// rounded down, so a patient changed in the same second as the watermark is
// listed again rather than missed.
//
// After a full page the next request asks again from the second before the
// page's last change instead of following links.next: Cliniko's pages are
// offsets into a list sorted by updated_at, and a patient changed while the
// list is read moves to its end, shifting every later patient one place
// back, so the first patient of the next page would be skipped (and the
// caller's watermark would pass it). Only a page whose patients all changed
// in one second (where asking again could not move on) follows links.next.
// Patients of the boundary second are listed twice.
//
// An error ends the sequence; it is yielded with an empty Page.
func (c *Client) PatientsUpdatedSince(ctx context.Context, a Auth, since time.Time) iter.Seq2[Page, error] {
	const op = "list_patients"
	return func(yield func(Page, error) bool) {
		shard, err := c.shard(op, a)
		if err != nil {
			yield(Page{}, err)
			return
		}
		base := c.baseURL(shard)
		changedAfter := func(t time.Time) string {
			q := url.Values{}
			q.Add("q[]", "updated_at:>"+t.UTC().Truncate(time.Second).Format(time.RFC3339))
			q.Set("sort", "updated_at")
			q.Set("per_page", "100")
			return base + "/patients?" + q.Encode()
		}
		next := changedAfter(since)
		seen := map[string]bool{}
		for next != "" {
			seen[next] = true
			res, err := c.do(ctx, a, shard, request{op: op, method: http.MethodGet, url: next,
				path: "/patients", limited: true, retries: c.cfg.GetRetries})
			if err != nil {
				yield(Page{}, err)
				return
			}
			pg, err := decodePatientPage(res.body)
			if err != nil {
				yield(Page{}, decodeError(op, res.status, err))
				return
			}
			var nextErr error
			if pg.Next != "" {
				n, err := sameOrigin(op, base, next, pg.Next)
				if ps := pg.Patients; err == nil && len(ps) > 0 {
					first := ps[0].UpdatedAt.UTC().Truncate(time.Second)
					last := ps[len(ps)-1].UpdatedAt.UTC().Truncate(time.Second)
					if last.After(first) {
						n = changedAfter(last.Add(-time.Second))
					}
				}
				switch {
				case err != nil:
					nextErr, pg.Next = err, ""
				case seen[n]:
					pg.Next = "" // a link back to a page already read: stop
				default:
					pg.Next = n
				}
			}
			if !yield(pg, nil) {
				return
			}
			if nextErr != nil {
				yield(Page{}, nextErr)
				return
			}
			next = pg.Next
		}
	}
}
