#!/usr/bin/perl
# The Docker API's way in from the host, without encryption inside the guest.
# The host agent connects through QEMU's forward from the host's loopback, sends
# the per-boot token from the config disk as its first line, and from then on
# the connection is dockerd's socket, both ways, half-closes passed on.
# Under emulation this carries `docker load` as fast as the guest's own socket,
# where SSH managed two thirds (docs/benchmarks.md). The firewall (boot.sh)
# admits this port from the host's NIC only; the token keeps out other users of
# the host, who can reach its loopback port too.
#
# The first line may name another target after the token, for the swarm
# clusters whose nodes run inside the guest (docs/swarm.md):
#   TOKEN                  the machine's own engine (no answer line: the bytes
#                          that follow are the client's)
#   TOKEN node NAME        the engine of swarm node NAME (its socket in NODES-DIR)
#   TOKEN tcp ADDR PORT    a TCP port of a cluster address (ADDR starts with
#                          TCP-PREFIX): a routing-mesh port served by a node
# A named target answers "ok\n" once it is connected, so the host can try the
# next node when one is dead, and closes the connection when it cannot connect.
# One process and one select loop for every connection: a fork costs ~12 ms
# under emulation, and every docker command opens a connection. TCP targets are
# connected without blocking, so a node that does not answer stalls nobody.
# Usage: docker-gate.pl PORT TOKEN-FILE DOCKER-SOCKET [NODES-DIR [TCP-PREFIX]]
use strict;
use warnings;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Errno qw(EAGAIN EINPROGRESS EINTR EWOULDBLOCK);
use Socket qw(IPPROTO_TCP TCP_NODELAY SHUT_WR PF_INET SOCK_STREAM SOL_SOCKET SO_ERROR
              inet_aton pack_sockaddr_in);

my ($port, $token_file, $target, $nodes_dir, $tcp_prefix) = @ARGV;
$nodes_dir //= '/run/moorage-nodes';
$tcp_prefix //= '172.30.';
open(my $fh, '<', $token_file) or die "docker-gate: $token_file: $!\n";
my $token = <$fh>;
close $fh;
chomp $token;
length($token) >= 32 or die "docker-gate: no token in $token_file\n";
my $max_line = length($token) + 80;

use constant {
    CHUNK     => 262144,
    HIGH      => 4 * 262144,    # stop reading a side while its peer owes this much
    HANDSHAKE => 10,            # seconds to send the token
    CONNECT   => 3,             # seconds for a TCP target to accept
};

$SIG{PIPE} = 'IGNORE';
my $server = IO::Socket::INET->new(
    LocalAddr => '0.0.0.0', LocalPort => $port, Listen => 128, ReuseAddr => 1,
) or die "docker-gate: cannot listen on port $port: $!\n";
$server->blocking(0);

# fileno -> { sock, peer (fileno), out (bytes owed to sock), in_done (read side ended),
#             shut (write side shut), line (first line so far; handshake only),
#             deadline (of the handshake, or of a TCP target's connect),
#             connecting (a TCP target not connected yet) }
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
    return 1 if $c->{connecting};
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

sub target_socket {
    # The target a first line's route names: (socket, whether it answers "ok"), or ().
    my ($route) = @_;
    if (!defined $route) {
        my $s = IO::Socket::UNIX->new(Peer => $target) or return ();
        return ($s, 0);
    }
    if ($route =~ /\Anode ([a-z0-9][a-z0-9-]{0,62})\z/) {
        my $s = IO::Socket::UNIX->new(Peer => "$nodes_dir/$1/docker.sock") or return ();
        return ($s, 1);
    }
    if ($route =~ /\Atcp (\d{1,3}(?:\.\d{1,3}){3}) (\d{1,5})\z/
        && index($1, $tcp_prefix) == 0 && $2 > 0 && $2 < 65536) {
        my $addr = inet_aton($1) or return ();
        socket(my $s, PF_INET, SOCK_STREAM, 0) or return ();
        $s->blocking(0);
        return () if !connect($s, pack_sockaddr_in($2, $addr)) && $! != EINPROGRESS;
        return ($s, 1);
    }
    return ();
}

sub handshake {
    my ($fd) = @_;
    my $c = $conn{$fd};
    my $n = sysread($c->{sock}, $c->{line}, CHUNK, length($c->{line}));
    return if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR);
    return drop($fd) unless $n;
    my $nl = index($c->{line}, "\n");
    if ($nl < 0) {
        drop($fd) if length($c->{line}) > $max_line;
        return;
    }
    my ($given, $route) = split / /, substr($c->{line}, 0, $nl), 2;
    my $rest = substr($c->{line}, $nl + 1);
    $given //= '';
    return drop($fd) if length($given) != length($token);
    # Compared in full whatever differs first, so timing tells nothing.
    return drop($fd) if (($given ^ $token) =~ tr/\0//c) != 0;
    my ($sock, $answers) = target_socket($route);
    return drop($fd) unless $sock;
    $sock->blocking(0);
    my $tfd = fileno $sock;
    delete @$c{qw(line deadline)};
    $c->{peer} = $tfd;
    $conn{$tfd} = { sock => $sock, peer => $fd, out => $rest, in_done => 0, shut => 0 };
    if ($answers && $route =~ /\Atcp /) {
        @{ $conn{$tfd} }{qw(connecting deadline)} = (1, time + CONNECT);
    } elsif ($answers) {
        $c->{out} .= "ok\n";
        flush($fd) or return;
    }
    flush($tfd) if $rest ne '';
}

sub connected {
    # A TCP target became writable: connected, or refused.
    my ($fd) = @_;
    my $t = $conn{$fd};
    my $err = unpack('i', getsockopt($t->{sock}, SOL_SOCKET, SO_ERROR) // pack('i', 1));
    return drop($fd) if $err;
    delete @$t{qw(connecting deadline)};
    setsockopt($t->{sock}, IPPROTO_TCP, TCP_NODELAY, 1);
    $conn{ $t->{peer} }{out} .= "ok\n";
    flush($t->{peer}) or return;
    flush($fd);
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
        my $c = $conn{$fd} or next;
        if (exists $c->{line}) {
            if ($now > $c->{deadline}) { drop($fd); next; }
            vec($rin, $fd, 1) = 1;
            next;
        }
        if ($c->{connecting}) {
            if ($now > $c->{deadline}) { drop($fd); next; }
            vec($win, $fd, 1) = 1;
            next;
        }
        my $p = $conn{ $c->{peer} } or next;
        next if $p->{connecting};    # nothing to carry until the target answers
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
        if (vec($wout, $fd, 1)) {
            if ($conn{$fd}{connecting}) { connected($fd); next; }
            flush($fd) or next;
        }
        next unless $conn{$fd} && vec($rout, $fd, 1);
        if (exists $conn{$fd}{line}) { handshake($fd) } else { relay($fd) }
    }
}
