package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/store"
	"github.com/spf13/cobra"
)

func (e *env) adminCmd() *cobra.Command {
	root := &cobra.Command{Use: "admin", Short: "Administration: subscriptions, practitioners, sharing, transfers",
		Long: `Create subscriptions (clinics) and practitioners, deactivate practitioners, set
a subscription's sharing groups and transfer patients. Mirrors the admin API (/admin/api/…).

  pmsbridge admin subscription create --name "City Physio" [--time-zone Australia/Perth]
  pmsbridge admin subscription list
  pmsbridge admin practitioner create --subscription sub_… --email a@b.example --name "Dr A" (password from PMSBRIDGE_NEW_PASSWORD or stdin)
  pmsbridge admin practitioner list --subscription sub_…
  pmsbridge admin practitioner deactivate prac_…
  pmsbridge admin sharing set sub_… --patients prac_a,prac_b [--content prac_a] [--yes]
  pmsbridge admin patient transfer pat_… --to prac_…
  pmsbridge admin keys reencrypt [--yes]     (after a key rotation)

` + confirmRule,
		RunE: groupRunE}
	var asJSON bool
	root.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")

	sub := &cobra.Command{Use: "subscription", Short: "Subscriptions (clinics)", RunE: groupRunE}
	var subName, subTimeZone string
	subCreate := e.toolsCmd("create", "Create a subscription", "", cobra.NoArgs, func(cmd *cobra.Command, t *app.Tools, _ []string) error {
		s, err := t.Store.CreateSubscription(cmd.Context(), subName, store.WithTimeZone(subTimeZone))
		if err != nil {
			return storeErr(err)
		}
		if asJSON {
			return e.printJSON(map[string]string{"id": s.ID, "name": s.Name, "time_zone": s.TimeZone})
		}
		fmt.Fprintf(e.stdout, "Created subscription %s (%s, time zone %s)\n", s.ID, s.Name, s.TimeZone)
		return nil
	})
	subCreate.Flags().StringVar(&subName, "name", "", "the clinic's name (required)")
	subCreate.Flags().StringVar(&subTimeZone, "time-zone", "", "the clinic's IANA time zone, e.g. Australia/Perth (default: the region's, e.g. au: Australia/Sydney)")
	subList := e.toolsCmd("list", "List subscriptions", "", cobra.NoArgs, func(cmd *cobra.Command, t *app.Tools, _ []string) error {
		list, err := t.Store.ListSubscriptions(cmd.Context())
		if err != nil {
			return err
		}
		if asJSON {
			return e.printJSON(map[string]any{"subscriptions": list})
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTIME ZONE")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID, s.Name, s.TimeZone)
		}
		return tw.Flush()
	})
	sub.AddCommand(subCreate, subList)

	prac := &cobra.Command{Use: "practitioner", Short: "Practitioners", RunE: groupRunE}
	var np store.NewPractitioner
	pracCreate := e.toolsCmd("create", "Create a practitioner (password from PMSBRIDGE_NEW_PASSWORD or the first line of stdin)", "", cobra.NoArgs,
		func(cmd *cobra.Command, t *app.Tools, _ []string) error {
			// From the command's environment (os.Environ() in production),
			// never straight from the process's.
			np.Password = ""
			for _, kv := range e.environ {
				if v, ok := strings.CutPrefix(kv, "PMSBRIDGE_NEW_PASSWORD="); ok {
					np.Password = v
				}
			}
			if np.Password == "" {
				line, _ := readLine(e.stdin)
				np.Password = line
			}
			p, err := t.Store.CreatePractitioner(cmd.Context(), np)
			if err != nil {
				return storeErr(err)
			}
			if asJSON {
				return e.printJSON(map[string]any{"id": p.ID, "subscription_id": p.SubscriptionID, "email": p.Email, "name": p.Name, "active": p.Active})
			}
			fmt.Fprintf(e.stdout, "Created practitioner %s (%s, %s)\n", p.ID, p.Name, p.Email)
			return nil
		})
	pracCreate.Flags().StringVar(&np.SubscriptionID, "subscription", "", "subscription id (required)")
	pracCreate.Flags().StringVar(&np.Email, "email", "", "login email (required)")
	pracCreate.Flags().StringVar(&np.Name, "name", "", "display name (required)")
	var listSub string
	pracList := e.toolsCmd("list", "List a subscription's practitioners", "", cobra.NoArgs, func(cmd *cobra.Command, t *app.Tools, _ []string) error {
		if listSub == "" {
			return usageError{errors.New("--subscription is required")}
		}
		list, err := t.Store.ListPractitioners(cmd.Context(), listSub)
		if err != nil {
			return storeErr(err)
		}
		if asJSON {
			return e.printJSON(map[string]any{"practitioners": list})
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tEMAIL\tACTIVE")
		for _, p := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", p.ID, p.Name, p.Email, p.Active)
		}
		return tw.Flush()
	})
	pracList.Flags().StringVar(&listSub, "subscription", "", "subscription id (required)")
	pracDeactivate := e.toolsCmd("deactivate ID", "Deactivate a practitioner (ends their sessions; their patients stay)", "", cobra.ExactArgs(1),
		func(cmd *cobra.Command, t *app.Tools, args []string) error {
			if err := t.Store.Deactivate(cmd.Context(), args[0]); err != nil {
				return storeErr(err)
			}
			if asJSON {
				p, err := t.Store.GetPractitioner(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return e.printJSON(map[string]any{"id": p.ID, "subscription_id": p.SubscriptionID, "email": p.Email, "name": p.Name, "active": p.Active})
			}
			fmt.Fprintf(e.stdout, "Deactivated %s\n", args[0])
			return nil
		})
	prac.AddCommand(pracCreate, pracList, pracDeactivate)

	sharing := &cobra.Command{Use: "sharing", Short: "A subscription's sharing groups", RunE: groupRunE}
	var patients, content []string
	var sharingYes *confirmer
	sharingSet := e.toolsCmd("set SUBSCRIPTION", "Set the patient-sharing and content-sharing groups",
		`Replace a subscription's two sharing groups with the practitioners given (a
practitioner left out loses what the group gave them).

Always asks first on a terminal, showing the groups before and after; --yes
sets them without asking. Without a terminal and without --yes it exits 2 and
changes nothing; answering anything but "y" exits 1 ("Nothing changed.").`, cobra.ExactArgs(1),
		func(cmd *cobra.Command, t *app.Tools, args []string) error {
			before, err := t.Store.GetSharing(cmd.Context(), args[0])
			if err != nil {
				return storeErr(err)
			}
			q := fmt.Sprintf("Sharing groups of %s:\n  patients: %s → %s\n  content:  %s → %s\nSet them?",
				args[0], group(before.Patients), group(patients), group(before.Content), group(content))
			if err := sharingYes.ask(q, "Nothing changed."); err != nil {
				return err
			}
			sh, err := t.Store.SetSharing(cmd.Context(), args[0], patients, content)
			if err != nil {
				return storeErr(err)
			}
			if asJSON {
				return e.printJSON(sh)
			}
			fmt.Fprintf(e.stdout, "Sharing of %s set: patients %v, content %v\n", args[0], patients, content)
			return nil
		})
	sharingYes = e.addYes(sharingSet, "set the groups")
	sharingSet.PreRunE = func(cmd *cobra.Command, _ []string) error { return sharingYes.canAsk(cmd) }
	sharingSet.Flags().StringSliceVar(&patients, "patients", nil, "practitioner ids in the patient-sharing group")
	sharingSet.Flags().StringSliceVar(&content, "content", nil, "practitioner ids in the content-sharing group")
	sharing.AddCommand(sharingSet)

	patient := &cobra.Command{Use: "patient", Short: "Patients: support's transfer", RunE: groupRunE}
	var to string
	patientTransfer := e.toolsCmd("transfer PATIENT", "Make another practitioner of the clinic the patient's owner (written to the patient's audit log)", "", cobra.ExactArgs(1),
		func(cmd *cobra.Command, t *app.Tools, args []string) error {
			if to == "" {
				return usageError{errors.New("--to is required: the id of the practitioner who becomes the owner")}
			}
			prev, err := t.Store.TransferBySupport(cmd.Context(), args[0], to)
			if err != nil {
				return storeErr(err)
			}
			if asJSON {
				return e.printJSON(map[string]string{"id": args[0], "owner_id": to, "previous_owner_id": prev})
			}
			fmt.Fprintf(e.stdout, "Transferred %s from %s to %s\n", args[0], prev, to)
			return nil
		})
	patientTransfer.Flags().StringVar(&to, "to", "", "id of the practitioner who becomes the owner (required)")
	patient.AddCommand(patientTransfer)

	keys := &cobra.Command{Use: "keys", Short: "Encryption keys: re-seal records after a rotation", RunE: groupRunE}
	var reencryptYes *confirmer
	reencrypt := e.toolsCmd("reencrypt", "Re-seal every record made under an older encryption key with the current one",
		`After a key rotation (the new key in secrets.encryption_key, the old one in
secrets.previous_encryption_keys), re-seal every record made under an older key —
patients' details, programmes and their codes, Cliniko keys — with the current
key, and move the access-code index to it. Once it is done, the old key can be
removed from secrets.previous_encryption_keys. Safe to run while the service is
up, and to run again.

Acts on every record: asks first on a terminal; --yes re-seals without asking.
Without a terminal and without --yes it exits 2 and changes nothing.`, cobra.NoArgs,
		func(cmd *cobra.Command, t *app.Tools, _ []string) error {
			current := t.Keys.CurrentKeyID()
			q := fmt.Sprintf("Re-seal every record made under an older encryption key with the current key %s?", current)
			if err := reencryptYes.ask(q, "Nothing re-sealed."); err != nil {
				return err
			}
			n, err := t.Store.Reencrypt(cmd.Context())
			if err != nil {
				return fmt.Errorf("re-sealed %s, then: %w", pmsbridge.Count(n, "record", "records"), err)
			}
			if asJSON {
				return e.printJSON(map[string]any{"reencrypted": n, "key_id": current})
			}
			if n == 0 {
				fmt.Fprintf(e.stdout, "Every record is already sealed with the current key %s; nothing needed re-sealing.\n", current)
				return nil
			}
			fmt.Fprintf(e.stdout, "Re-sealed %s with the current key %s. Older keys can now be removed from secrets.previous_encryption_keys.\n", pmsbridge.Count(n, "record", "records"), current)
			return nil
		})
	reencryptYes = e.addYes(reencrypt, "re-seal")
	reencrypt.PreRunE = func(cmd *cobra.Command, _ []string) error { return reencryptYes.canAsk(cmd) }
	keys.AddCommand(reencrypt)

	root.AddCommand(sub, prac, sharing, patient, keys)
	return root
}

// group shows a sharing group for a question.
func group(ids []string) string {
	if len(ids) == 0 {
		return "(nobody)"
	}
	return strings.Join(ids, ", ")
}

// storeErr turns validation errors into usage errors (exit 2) with the
// store's own sentence.
func storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrConflict):
		return usageError{err}
	case errors.Is(err, store.ErrNotFound):
		return usageError{fmt.Errorf("not found: %w", err)}
	}
	return err
}
