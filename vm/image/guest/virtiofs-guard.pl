#!/usr/bin/perl
# Keeps the shared folders' inodes that the guest caches within what the host's
# virtiofsd can hold: the daemon keeps one open descriptor per inode the guest
# knows, and the guest lets go of an inode only when it drops it from its cache,
# which it otherwise does only under memory pressure. Where the host caps the
# daemon's descriptors low (a sandbox whose root cannot pass 20,000), walking a
# 25,000-file tree failed with "Too many open files". So when the guest's FUSE
# inodes pass BUDGET, the guest drops its cached names and inodes (all of them:
# the kernel has no per-mount switch); the daemon then closes their descriptors.
# Inodes in use (open files, working folders) are never dropped, and a drop
# that cannot get far below the budget is not repeated until there are a
# quarter of a budget of new ones to drop.
# Usage: virtiofs-guard.pl BUDGET
use strict;
use warnings;

my $budget = shift // 0;
$budget =~ /^\d+$/ && $budget > 0 or die "virtiofs-guard: usage: virtiofs-guard.pl BUDGET\n";
my $POLL = 0.05;    # seconds: a cold walk under TCG brings ~30,000 new inodes a second

sub fuse_inodes {
    if (open(my $fh, '<', '/sys/kernel/slab/fuse_inode/objects')) {
        my ($n) = (<$fh> // '') =~ /^(\d+)/;
        return $n;
    }
    open(my $fh, '<', '/proc/slabinfo') or return undef;
    while (<$fh>) { return $1 if /^fuse_inode\s+(\d+)/ }
    return undef;
}

sub drop_caches {
    open(my $fh, '>', '/proc/sys/vm/drop_caches') or return;
    print $fh "2\n";
    close $fh;
}

my $floor = 0;    # what the last drop could not drop
while (1) {
    select(undef, undef, undef, $POLL);
    my $n = fuse_inodes();
    if (!defined $n) {
        next if -e '/sys/kernel/slab/fuse_inode' || -r '/proc/slabinfo';
        warn "virtiofs-guard: this kernel shows no count of FUSE inodes; not guarding\n";
        sleep;    # for good: init would only start it again
    }
    next if $n <= $budget || $n - $floor < $budget / 4;
    drop_caches();
    $floor = fuse_inodes() // 0;
    print STDERR scalar(localtime), ": $n shared-folder inodes, over $budget: dropped to $floor\n";
}
