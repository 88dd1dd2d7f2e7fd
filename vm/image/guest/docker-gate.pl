#!/usr/bin/perl
# The Docker API's way in from the host, without encryption inside the guest.
# The host agent connects through QEMU's forward from the host's loopback, sends
# the per-boot token from the config disk as its first line, and from then on
# the connection is dockerd's socket, both ways, half-closes passed on.
# Under emulation this carries `docker load` as fast as the guest's own socket,
# where SSH managed two thirds (docs/benchmarks.md). The firewall (boot.sh)
# admits this port from the host's NIC only; the token keeps out other users of
# the host, who can reach its loopback port too.
# One process and one select loop for every connection: a fork costs ~12 ms
# under emulation, and every docker command opens a connection.
# Usage: docker-gate.pl PORT TOKEN-FILE DOCKER-SOCKET
use strict;
use warnings;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use Socket qw(IPPROTO_TCP TCP_NODELAY SHUT_WR);

my ($port, $token_file, $target) = @ARGV;
open(my $fh, '<', $token_file) or die "docker-gate: $token_file: $!\n";
my $token = <$fh>;
close $fh;
chomp $token;
length($token) >= 32 or die "docker-gate: no token in $token_file\n";
my $line_len = length($token) + 1;

use constant {
    CHUNK     => 262144,
    HIGH      => 4 * 262144,    # stop reading a side while its peer owes this much
    HANDSHAKE => 10,            # seconds to send the token
};

$SIG{PIPE} = 'IGNORE';
my $server = IO::Socket::INET->new(
    LocalAddr => '0.0.0.0', LocalPort => $port, Listen => 128, ReuseAddr => 1,
) or die "docker-gate: cannot listen on port $port: $!\n";
$server->blocking(0);

# fileno -> { sock, peer (fileno), out (bytes owed to sock), in_done (read side ended),
#             shut (write side shut), line (token so far; handshake only), deadline }
my %conn;

sub drop {
    my ($fd) = @_;
    my $c = delete $conn{$fd} or return;
    close $c->{sock};
    drop($c->{peer}) if defined $c->{peer};
}

sub try_finish {
    # Both read sides ended and every byte delivered: the pair is done.
    my ($fd) = @_;
    my $c = $conn{$fd} or return;
    my $p = $conn{ $c->{peer} } or return;
    drop($fd) if $c->{in_done} && $p->{in_done} && $c->{out} eq '' && $p->{out} eq '';
}

sub flush {
    my ($fd) = @_;
    my $c = $conn{$fd};
    while ($c->{out} ne '') {
        my $w = syswrite($c->{sock}, $c->{out});
        if (!defined $w) {
            return 1 if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            drop($fd);
            return 0;
        }
        substr($c->{out}, 0, $w, '');
    }
    my $p = $conn{ $c->{peer} };
    if ($p->{in_done} && !$c->{shut}) {
        shutdown($c->{sock}, SHUT_WR);
        $c->{shut} = 1;
    }
    try_finish($fd);
    return 1;
}

sub handshake {
    my ($fd) = @_;
    my $c = $conn{$fd};
    my $n = sysread($c->{sock}, $c->{line}, $line_len - length($c->{line}), length($c->{line}));
    return if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR);
    return drop($fd) unless $n;
    return if length($c->{line}) < $line_len;
    # Compared in full whatever differs first, so timing tells nothing.
    return drop($fd) if (($c->{line} ^ "$token\n") =~ tr/\0//c) != 0;
    my $docker = IO::Socket::UNIX->new(Peer => $target) or return drop($fd);
    $docker->blocking(0);
    my $dfd = fileno $docker;
    delete @$c{qw(line deadline)};
    $c->{peer} = $dfd;
    $conn{$dfd} = { sock => $docker, peer => $fd, out => '', in_done => 0, shut => 0 };
}

sub relay {
    my ($fd) = @_;
    my $c = $conn{$fd};
    my $p = $conn{ $c->{peer} };
    my $n = sysread($c->{sock}, my $buf, CHUNK);
    if (!defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        return drop($fd);
    }
    if ($n == 0) {
        $c->{in_done} = 1;
    } else {
        $p->{out} .= $buf;
    }
    flush($c->{peer});
}

while (1) {
    my ($rin, $win) = ('', '');
    vec($rin, fileno $server, 1) = 1;
    my $now = time;
    for my $fd (keys %conn) {
        my $c = $conn{$fd};
        if (exists $c->{line}) {
            if ($now > $c->{deadline}) { drop($fd); next; }
            vec($rin, $fd, 1) = 1;
            next;
        }
        my $p = $conn{ $c->{peer} } or next;
        vec($rin, $fd, 1) = 1 if !$c->{in_done} && length($p->{out}) < HIGH;
        vec($win, $fd, 1) = 1 if $c->{out} ne '';
    }
    my $ready = select(my $rout = $rin, my $wout = $win, undef, 1);
    next if $ready <= 0;
    if (vec($rout, fileno $server, 1)) {
        while (my $client = $server->accept) {
            $client->blocking(0);
            setsockopt($client, IPPROTO_TCP, TCP_NODELAY, 1);
            $conn{ fileno $client } = { sock => $client, out => '', in_done => 0, shut => 0,
                                        line => '', deadline => time + HANDSHAKE };
        }
    }
    for my $fd (keys %conn) {
        next unless $conn{$fd};
        if (vec($wout, $fd, 1)) { flush($fd) or next; }
        next unless $conn{$fd} && vec($rout, $fd, 1);
        if (exists $conn{$fd}{line}) { handshake($fd) } else { relay($fd) }
    }
}
