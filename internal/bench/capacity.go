package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/internal/rig"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// Capacity scenario (issue 16): Redis memory per record, measured on a data
// set seeded through the store (real records, encrypted as in production),
// and the projection for a large region.
const (
	capPractitioners   = 2000
	capPerClinic       = 20 // practitioners per subscription
	capPatients        = 100000
	capVersionsEach    = 3 // versions per patient: one programme of three versions
	capExercises       = 8 // catalogue exercises per version
	capLedgerEntries   = 10000
	capAuditPatients   = 1000 // patients whose audit log is filled to the cap
	capArchivedTasks   = 10000
	capSeedConcurrency = 16
	// The large region the projection is for.
	projPatients = 1_000_000
)

// CapacityItem is the memory one kind of record costs.
type CapacityItem struct {
	Name  string
	Count int
	Bytes int64 // used_memory after - before
}

// Per is the bytes per record.
func (c CapacityItem) Per() float64 { return float64(c.Bytes) / float64(c.Count) }

// CapacityResult is the capacity scenario.
type CapacityResult struct {
	Scale       float64
	Items       []CapacityItem
	Total       int64 // used_memory of the seeded database (all items)
	SeedElapsed time.Duration
	// Caps as configured (store defaults, asynq's).
	PatientAuditCap, AuditCap int
}

func (c *CapacityResult) item(name string) CapacityItem {
	for _, it := range c.Items {
		if it.Name == name {
			return it
		}
	}
	return CapacityItem{Name: name, Count: 1}
}

// usedMemory reads INFO memory's used_memory.
func usedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}

// parallel runs fn(i) for i in [0, n) on capSeedConcurrency goroutines and
// returns the first error.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range capSeedConcurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// capacity seeds the data set phase by phase on a fresh database (through
// the store, with the production encryption) and records the growth of
// Redis's used_memory in each phase. Nothing else writes to the server
// meanwhile (scenarios run one after another).
func (r *runner) capacity(ctx context.Context) error {
	scale := r.o.CapacityScale
	n := func(x int) int { return max(1, int(float64(x)*scale)) }
	res := &CapacityResult{Scale: scale, PatientAuditCap: 200, AuditCap: 10000}
	key, redisURL := rig.NewEncryptionKey(), r.freshDB()
	st, closeStore, err := rig.OpenStore(redisURL, key)
	if err != nil {
		return err
	}
	defer closeStore()
	rdb, err := redisClient(redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	defer rdb.FlushDB(context.WithoutCancel(ctx)) // give the memory back to the run
	t0 := time.Now()
	measure := func(name string, count int, seed func() error) error {
		before, err := usedMemory(ctx, rdb)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := seed(); err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
		after, err := usedMemory(ctx, rdb)
		if err != nil {
			return err
		}
		it := CapacityItem{Name: name, Count: count, Bytes: after - before}
		res.Items = append(res.Items, it)
		r.logf("  %s: %d in %s, %.0f bytes each", name, count, time.Since(start).Round(time.Millisecond), it.Per())
		return nil
	}
	base, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}

	// Subscriptions, each with its Cliniko account on au1 (as a saved key
	// records it).
	nPrac := n(capPractitioners)
	nSubs := max(1, nPrac/capPerClinic)
	subs := make([]store.Subscription, nSubs)
	accounts := make([]store.ClinikoAccount, nSubs)
	if err := measure("subscription", nSubs, func() error {
		return parallel(ctx, nSubs, func(ctx context.Context, i int) error {
			sub, err := st.CreateSubscription(ctx, fmt.Sprintf("Capacity Clinic %d", i))
			if err != nil {
				return err
			}
			subs[i] = sub
			accounts[i] = store.NewClinikoAccount("au1", []store.ClinikoBusiness{{ID: strconv.Itoa(900000 + i), Name: fmt.Sprintf("Capacity Clinic %d", i), CountryCode: "AU", TimeZone: "Australia/Sydney"}}, time.Now())
			_, err = st.AdoptClinikoAccount(ctx, sub.ID, accounts[i])
			return err
		})
	}); err != nil {
		return err
	}

	// Practitioners with a saved Cliniko key.
	pracs := make([]store.Practitioner, nPrac)
	if err := measure("practitioner (with a Cliniko key)", nPrac, func() error {
		return parallel(ctx, nPrac, func(ctx context.Context, i int) error {
			sub := i % nSubs
			p, err := st.CreatePractitioner(ctx, store.NewPractitioner{SubscriptionID: subs[sub].ID, Email: fmt.Sprintf("practitioner%d@clinic%d.example", i, sub),
				Name: fmt.Sprintf("Practitioner Number %d", i), Password: rig.Password})
			if err != nil {
				return err
			}
			pracs[i] = p
			return st.SetClinikoKey(ctx, p.ID, fmt.Sprintf("MS0%040d-au1", i), store.ClinikoUser{ID: strconv.Itoa(700000000 + i), Name: p.Name,
				Email: p.Email, Role: "practitioner", Shard: "au1", Account: accounts[sub]})
		})
	}); err != nil {
		return err
	}
	if err := measure("session", nPrac, func() error {
		return parallel(ctx, nPrac, func(ctx context.Context, i int) error {
			_, _, err := st.CreateSession(ctx, pracs[i].ID, "203.0.113.7", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15")
			return err
		})
	}); err != nil {
		return err
	}

	// Patients imported from Cliniko, linked, with details as a refresh
	// writes them.
	nPat := n(capPatients)
	patients := make([]store.Patient, nPat)
	if err := measure("patient (linked)", nPat, func() error {
		return parallel(ctx, nPat, func(ctx context.Context, i int) error {
			pr := pracs[i%nPrac]
			p, _, err := st.ImportPatient(ctx, pr.SubscriptionID, "au1", strconv.FormatInt(836447129235883061+int64(i), 10), pr.ID, store.Patient{
				FirstName: fmt.Sprintf("Firstname%d", i), LastName: fmt.Sprintf("Lastname-Family%d", i), Email: fmt.Sprintf("patient.%d@mail.example", i),
				Mobile: fmt.Sprintf("+614%08d", i), Gender: "Female", YearOfBirth: 1950 + i%60,
				BirthYearStatus: pmsbridge.BirthYearOK, BirthYearSource: pmsbridge.BirthYearFromCliniko,
			})
			if err != nil {
				return err
			}
			patients[i] = p
			return st.MarkLinkSynced(ctx, p.ID, time.Now())
		})
	}); err != nil {
		return err
	}

	// Programme versions: one programme of capVersionsEach versions per
	// patient, capExercises catalogue exercises each, each PDF uploaded.
	cat := pmsbridge.Catalogue()
	nVer := nPat * capVersionsEach
	if err := measure("programme version (PDF uploaded)", nVer, func() error {
		return parallel(ctx, nPat, func(ctx context.Context, i int) error {
			p := patients[i]
			id := ""
			for v := 1; v <= capVersionsEach; v++ {
				var exs []pmsbridge.Exercise
				for j := range capExercises {
					exs = append(exs, cat[(i+j+v)%len(cat)])
				}
				prog, _, err := st.CreateProgramme(ctx, pmsbridge.Programme{ID: id, Version: v, PatientID: p.ID, PractitionerID: p.OwnerID,
					Title: fmt.Sprintf("Knee rehabilitation, week %d", v), StartsOn: "2026-11-22",
					Notes: "Stop if the pain rises above 5/10. Ice for 10 minutes after the exercises.", Exercises: exs})
				if err != nil {
					return err
				}
				id = prog.ID
				if err := st.SetPDFState(ctx, prog.ID, v, store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: strconv.FormatInt(836447129300000000+int64(i*10+v), 10)}); err != nil {
					return err
				}
			}
			return nil
		})
	}); err != nil {
		return err
	}

	// Failure ledger entries: failed uploads, as the worker records them.
	nLedger := n(capLedgerEntries)
	if err := measure("failure-ledger entry", nLedger, func() error {
		return parallel(ctx, nLedger, func(ctx context.Context, i int) error {
			p := patients[i%nPat]
			payload := fmt.Sprintf(`{"programme_id":"prg_%024d","version":1,"patient_id":"%s","practitioner_id":"%s"}`, i, p.ID, p.OwnerID)
			return st.RecordFailure(ctx, store.Failure{TaskID: fmt.Sprintf("pdf:prg_%024d:v1", i), Queue: jobs.QueuePDF, Type: jobs.TypeUploadPDF,
				Permanent: true, Cause: pmsbridge.CauseClinikoForbidden, Reason: pmsbridge.CauseClinikoForbidden.Info().Reason,
				PractitionerID: p.OwnerID, PatientID: p.ID, ProgrammeID: fmt.Sprintf("prg_%024d", i), Version: 1, Attempts: 1, Payload: []byte(payload)})
		})
	}); err != nil {
		return err
	}
	res.Total, err = usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	res.Total -= base

	// Audit: some patients' logs filled to the cap with Cliniko calls (an
	// upload writes 4); the global log is capped too.
	nAudit := min(n(capAuditPatients), nPat)
	if err := measure("audit entry (a patient's log)", nAudit*res.PatientAuditCap, func() error {
		return parallel(ctx, nAudit, func(ctx context.Context, i int) error {
			p := patients[i]
			for j := range res.PatientAuditCap {
				if err := st.Audit(ctx, store.AuditEntry{PractitionerID: p.OwnerID, PatientID: p.ID, Op: "cliniko.create_attachment", Status: 201,
					Detail: fmt.Sprintf("POST /patient_attachments cliniko_patient=%d", 836447129235883061+int64(i+j))}); err != nil {
					return err
				}
			}
			return nil
		})
	}); err != nil {
		return err
	}

	// asynq's archive: failed upload tasks, as asynq keeps them.
	nArch := n(capArchivedTasks)
	if err := measure("archived task (asynq)", nArch, func() error {
		client := asynq.NewClientFromRedisClient(rdb)
		insp := asynq.NewInspectorFromRedisClient(rdb)
		const q = "capacity"
		err := parallel(ctx, nArch, func(ctx context.Context, i int) error {
			p := patients[i%nPat]
			payload := fmt.Sprintf(`{"programme_id":"prg_%024d","version":1,"patient_id":"%s","practitioner_id":"%s"}`, i, p.ID, p.OwnerID)
			_, err := client.EnqueueContext(ctx, asynq.NewTask(jobs.TypeUploadPDF, []byte(payload)), asynq.Queue(q), asynq.TaskID(fmt.Sprintf("pdf:prg_%024d:v1", i)), asynq.MaxRetry(10), asynq.Timeout(2*time.Minute))
			return err
		})
		if err != nil {
			return err
		}
		_, err = insp.ArchiveAllPendingTasks(q)
		return err
	}); err != nil {
		return err
	}
	res.SeedElapsed = time.Since(t0)
	r.rep.Capacity = res
	return nil
}

// capacityProjection is the memory of a region of projPatients patients
// with the measured data set's proportions.
type capacityProjection struct {
	Lines    []projLine
	Typical  float64 // bytes: the records, the typical audit, bounded extras
	WorstAdd float64 // bytes more when every patient's audit log is full
}

type projLine struct {
	What  string
	Count float64
	Per   float64
}

func (c *CapacityResult) project() capacityProjection {
	f := float64(projPatients) / float64(c.item("patient (linked)").Count)
	var p capacityProjection
	add := func(what string, count, per float64) {
		p.Lines = append(p.Lines, projLine{what, count, per})
		p.Typical += count * per
	}
	for _, name := range []string{"subscription", "practitioner (with a Cliniko key)", "session", "patient (linked)", "programme version (PDF uploaded)"} {
		it := c.item(name)
		add(name, float64(it.Count)*f, it.Per())
	}
	audit := c.item("audit entry (a patient's log)").Per()
	add("audit entries, 20 per patient (an import, three uploads of 4 calls, a few refreshes)", projPatients*20, audit)
	add(fmt.Sprintf("global audit log (capped at %d)", c.AuditCap), float64(c.AuditCap), audit)
	add("failure-ledger entries (1% of versions failed for good and not dealt with)", 0.01*projPatients*capVersionsEach, c.item("failure-ledger entry").Per())
	add(fmt.Sprintf("asynq archive at its cap (10,000 tasks in each of %d queues)", len(jobs.Queues)), float64(len(jobs.Queues)*10000), c.item("archived task (asynq)").Per())
	p.WorstAdd = float64(projPatients) * float64(c.PatientAuditCap-20) * audit
	return p
}

func mib(b float64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", b/(1<<20))
}

// summary adds the scenario's lines to the summary table.
func (c *CapacityResult) summary(w func(string, ...any)) {
	p := c.project()
	w("| Redis memory per patient / per programme version / per practitioner / per ledger entry | %.0f / %.0f / %.0f / %.0f bytes | | recorded | |\n",
		c.item("patient (linked)").Per(), c.item("programme version (PDF uploaded)").Per(), c.item("practitioner (with a Cliniko key)").Per(), c.item("failure-ledger entry").Per())
	w("| Redis memory projected for a region of %d patients | %s (%s with every patient's audit log full) | | maxmemory with headroom | |\n",
		projPatients, mib(p.Typical), mib(p.Typical+p.WorstAdd))
}

// markdown writes the scenario's section.
func (c *CapacityResult) markdown(w func(string, ...any), section int) {
	w("## %d. Capacity: Redis memory per record, and for a large region\n\n", section)
	w("A data set seeded through the store on a fresh database of the benchmark's Redis (`rig.OpenStore`: the\n")
	w("store code and encryption of production: patient details, Cliniko keys, programme versions and access\n")
	w("codes sealed with AES-256-GCM), one kind after another, with `INFO memory`'s `used_memory` read before and\n")
	w("after each: the growth over the count is the memory of one record with its indexes (sets, link hash entry,\n")
	w("code index, PDF state) and Redis's own overhead per key. Scale %.2g of the full set (%d practitioners in\n", c.Scale, c.item("practitioner (with a Cliniko key)").Count)
	w("clinics of %d, %d patients, %d programme versions of %d catalogue exercises); seeding took %s.\n\n", capPerClinic, c.item("patient (linked)").Count,
		c.item("programme version (PDF uploaded)").Count, capExercises, c.SeedElapsed.Round(time.Second))
	w("| record | count | memory | per record |\n| --- | --- | --- | --- |\n")
	for _, it := range c.Items {
		w("| %s | %d | %s | %.0f bytes |\n", it.Name, it.Count, mib(float64(it.Bytes)), it.Per())
	}
	w("| **the records above without audit and archive** | | %s | |\n\n", mib(float64(c.Total)))
	w("The first, small phase (subscriptions) also carries one-time costs of the database (the Lua scripts,\n")
	w("the key table's first growth), so its figure is high; the large phases are what the projection rests on.\n")
	w("A programme version is mostly its sealed JSON: %d exercises with their instructions are about 3 KB of\n", capExercises)
	w("JSON, about 4 KB once sealed and base64-encoded (deflate before sealing would make it about 1.4 KB).\n\n")
	p := c.project()
	w("**Projection for a region of %d patients** (the same proportions: %.0f patients per practitioner, %d\n", projPatients,
		float64(c.item("patient (linked)").Count)/float64(c.item("practitioner (with a Cliniko key)").Count), capVersionsEach)
	w("programme versions per patient):\n\n")
	w("| what | count | per item | memory |\n| --- | --- | --- | --- |\n")
	for _, l := range p.Lines {
		w("| %s | %.0f | %.0f bytes | %s |\n", l.What, l.Count, l.Per, mib(l.Count*l.Per))
	}
	w("| **total** | | | **%s** |\n", mib(p.Typical))
	w("| every patient's audit log full (%d entries, the cap) instead of 20 | | | + %s |\n\n", c.PatientAuditCap, mib(p.WorstAdd))
	w("**maxmemory**: the records grow with patients and versions and are never evicted (`maxmemory-policy\n")
	w("noeviction`: at the limit writes fail, reads go on), so set `maxmemory` with room for growth and alert well\n")
	w("before it: for this region **%s** (the projection × 1.5), on a host with at least twice that in RAM\n", mib(1.5*p.Typical))
	w("(an AOF rewrite forks Redis, and pages written during the rewrite are copied). Alert at 80%% of\n")
	w("`maxmemory` (`used_memory / maxmemory`, e.g. redis_exporter's `redis_memory_used_bytes`). Per-patient audit\n")
	w("logs are the one part that grows with activity rather than with data: at their cap of %d entries they\n", c.PatientAuditCap)
	w("would add %s for this region.\n\n", mib(p.WorstAdd))
	w("**Retention: what keeps memory from growing for ever.** Records (subscriptions, practitioners, patients,\n")
	w("programme versions) are the truth and are kept: they grow with the data. Everything else is bounded:\n\n")
	w("| what | bound |\n| --- | --- |\n")
	w("| asynq completed tasks | imports kept 10 minutes (the waiting page reads them); every other task type is deleted when done (`jobs.taskSpecs`) |\n")
	w("| asynq archived (failed) tasks | 10,000 per queue and 90 days, oldest dropped (asynq's own limits); measured above at %.0f bytes each |\n", c.item("archived task (asynq)").Per())
	w("| asynq daily counters; pmsbridge's done counters | 90 days; 8 days |\n")
	w("| failure ledger | one entry per failing piece of work (a programme version, an import, a refresh, an account's sync, a refused key), never one per attempt or period; kept until the work succeeds or support deletes it, so it grows only with failures nobody dealt with (`PmsbridgeFailureLedgerGrowing` alerts) |\n")
	w("| audit logs | the global log %d entries; each patient's Cliniko calls and actions %d entries, and each patient's tries at opening programmes %d entries (newest kept) |\n", c.AuditCap, c.PatientAuditCap, c.PatientAuditCap)
	w("| code messages to patients | one record per message asked for (a programme's first version, and resends, at most 5 per patient per hour), kept with the programme: they grow with the data (not measured here) |\n")
	w("| webhook event claims | 30 days |\n")
	w("| sessions | 12 hours idle, 7 days at most (key TTL); support sessions 8 hours |\n")
	w("| lock-out counters, refresh debounces, upload locks, period claims, import waits, Cliniko budgets | their own windows and TTLs (minutes to an hour) |\n\n")
	w("Reproduce: `go run ./cmd/pmsbridge-bench -only capacity -out /tmp/b.md` (`-capacity-scale 0.1` for a quick run).\n\n")
}
