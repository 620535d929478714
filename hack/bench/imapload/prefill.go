package imapload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Prefill appends messages to each account's mailbox until it holds at least
// messagesPerMailbox, so the mix has something to list, read and search. Accounts are filled
// in parallel (up to cfg.Clients at once); running it again tops up only what is missing.
func Prefill(ctx context.Context, cfg Config, messagesPerMailbox int) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	work := make(chan int)
	errs := make([]error, len(cfg.Accounts))
	var wg sync.WaitGroup
	for range min(cfg.Clients, len(cfg.Accounts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				errs[i] = prefillAccount(ctx, &cfg, i, messagesPerMailbox)
			}
		}()
	}
	for i := range cfg.Accounts {
		select {
		case work <- i:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func prefillAccount(ctx context.Context, cfg *Config, i, want int) error {
	acct := cfg.Accounts[i]
	ignore := func(string, time.Duration, error) {}
	c, err := login(cfg, ignore, acct)
	if err != nil {
		return err
	}
	defer c.Close()
	data, err := c.Select(cfg.Mailbox, nil).Wait()
	if err != nil {
		return fmt.Errorf("selecting %s as %s: %w", cfg.Mailbox, acct.User, err)
	}
	// Each account gets its own sequence of messages, the same for the same seed.
	r := rng(cfg.Seed^0x5eed, i)
	msgs := newMessageMaker(rand.New(rand.NewPCG(r.Uint64(), r.Uint64())))
	for n := int(data.NumMessages); n < want; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, msg := msgs.message()
		cmd := c.Append(cfg.Mailbox, int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			cmd.Close()
			return fmt.Errorf("appending to %s: %w", acct.User, err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("appending to %s: %w", acct.User, err)
		}
		if _, err := cmd.Wait(); err != nil {
			return fmt.Errorf("appending to %s: %w", acct.User, err)
		}
	}
	return c.Logout().Wait()
}
