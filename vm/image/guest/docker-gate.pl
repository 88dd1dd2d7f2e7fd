#!/usr/bin/perl
# The Docker API's way in from the host, without encryption inside the guest.
# The host agent connects through QEMU's forward from the host's loopback, sends
# the per-boot token from the config disk as its first line, and from then on
# the connection is dockerd's socket, both ways, half-closes passed on.
# Under emulation this carries `docker load` about as fast as the guest's own
# socket, where SSH managed two thirds (docs/benchmarks.md). The firewall
# (boot.sh) admits this port from the host's NIC only; the token keeps out
# other users of the host, who can reach its loopback port too.
# Usage: docker-gate.pl PORT TOKEN-FILE DOCKER-SOCKET
use strict;
use warnings;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(IPPROTO_TCP TCP_NODELAY SHUT_WR);

my ($port, $token_file, $target) = @ARGV;
open(my $fh, '<', $token_file) or die "docker-gate: $token_file: $!\n";
my $token = <$fh>;
close $fh;
chomp $token;
length($token) >= 32 or die "docker-gate: no token in $token_file\n";

$SIG{CHLD} = 'IGNORE';
$SIG{PIPE} = 'IGNORE';
my $server = IO::Socket::INET->new(
    LocalAddr => '0.0.0.0', LocalPort => $port, Listen => 128, ReuseAddr => 1,
) or die "docker-gate: cannot listen on port $port: $!\n";

while (1) {
    my $client = $server->accept or next;
    my $pid = fork;
    if (!defined $pid || $pid) { close $client; next; }
    close $server;
    serve($client);
    exit 0;
}

sub serve {
    my ($client) = @_;
    local $SIG{CHLD} = 'DEFAULT';    # this one waits for its own child
    setsockopt($client, IPPROTO_TCP, TCP_NODELAY, 1);
    my $line = '';
    my $want = length($token) + 1;
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 10;
        while (length($line) < $want) {
            my $n = sysread($client, $line, $want - length($line), length($line));
            die "closed\n" unless $n;
        }
        alarm 0;
        1;
    } or return;
    # Compared in full whatever differs first, so timing tells nothing.
    return unless (($line ^ "$token\n") =~ tr/\0//c) == 0;
    my $docker = IO::Socket::UNIX->new(Peer => $target) or return;
    # One process per direction: a blocking copy each way cannot deadlock.
    my $up = fork;
    return unless defined $up;
    if ($up == 0) {
        copy($client, $docker);
        exit 0;
    }
    copy($docker, $client);
    waitpid($up, 0);
}

sub copy {
    my ($from, $to) = @_;
    my $buf;
    while (1) {
        my $n = sysread($from, $buf, 262144);
        last unless $n;
        my $off = 0;
        while ($off < $n) {
            my $w = syswrite($to, $buf, $n - $off, $off);
            return unless defined $w;
            $off += $w;
        }
    }
    shutdown($to, SHUT_WR);
}
