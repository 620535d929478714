package builders

// AssignShards places the mailboxes without a shard (-1) on the replicas of a cluster with
// replicas replicas: each goes to the replica holding the fewest mailboxes at that moment (the
// lowest ordinal on a tie). Shards already given never change, even beyond replicas (a
// cluster scaled down keeps its mailboxes where their mail is), but only those in range count
// towards a replica's load.
func AssignShards(shards []int, replicas int) {
	if replicas < 1 {
		replicas = 1
	}
	load := make([]int, replicas)
	for _, s := range shards {
		if s >= 0 && s < replicas {
			load[s]++
		}
	}
	for i, s := range shards {
		if s >= 0 {
			continue
		}
		best := 0
		for r := range load {
			if load[r] < load[best] {
				best = r
			}
		}
		shards[i] = best
		load[best]++
	}
}
