package aws

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
)

// Instances read at the same time are read in few Describe calls, each
// once per process however many callers ask; a missing one is an error
// in EC2's words.
func TestConcurrentInstanceReadsAreBatched(t *testing.T) {
	fx, err := cloudsim.LoadFixture("../provider/testdata/aws.json")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := cloudsim.New(fx, cloudsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cloudsim.Start(sim, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, kv := range srv.Env() {
		t.Setenv(kv[0], kv[1])
	}
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	c, err := New(t.Context(), Config{Region: fx.AWS.Region, Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for round := range 3 {
		for i := 1; i <= 8; i++ {
			wg.Go(func() {
				id := fmt.Sprintf("i-000000000000000a%d", i)
				if m, err := c.Machine(t.Context(), id); err != nil || m.ID != id {
					t.Errorf("round %d: Machine(%s) = %v, %v", round, id, m, err)
				}
			})
		}
	}
	wg.Wait()
	if n := srv.Calls()["DescribeInstances"]; n > 3 {
		t.Errorf("%d DescribeInstances calls for 8 instances read 3 times each at once", n)
	}
	for id, n := range srv.ObjectReads() {
		if n != 1 {
			t.Errorf("%s read %d times", id, n)
		}
	}
	_, err = c.Machine(t.Context(), "i-0123456789abcdef0")
	if !errors.Is(err, ErrNotFound) || !isEC2Code(err, "InvalidInstanceID.NotFound") {
		t.Errorf("a missing instance: %v", err)
	}
}
