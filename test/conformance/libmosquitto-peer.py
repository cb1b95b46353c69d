#!/usr/bin/env python3
# A libmosquitto client (the MQTT library inside the Broadband Forum TR-369 agent, obuspa) driven
# through ctypes, for what the mosquitto_pub/sub tools cannot do: they refuse Keep Alive 0
# ("must be between 5 and 65535"), which the library itself, and obuspa's KeepAliveTime=0, use.
# Usage: libmosquitto-peer.py <sub|pub|will> host port user password <4|5> keepalive topic qos [count|message]
# Prints READY once subscribed (sub, will) and one line "<topic> <payload> <qos>" per message received.
import ctypes, sys, time

lib = ctypes.CDLL('libmosquitto.so.1')
mode, host, port, user, password, version, keepalive, topic, qos = sys.argv[1:10]
extra = sys.argv[10] if len(sys.argv) > 10 else ''
port, version, keepalive, qos = int(port), int(version), int(keepalive), int(qos)

class Message(ctypes.Structure):
    _fields_ = [('mid', ctypes.c_int), ('topic', ctypes.c_char_p), ('payload', ctypes.c_void_p),
                ('payloadlen', ctypes.c_int), ('qos', ctypes.c_int), ('retain', ctypes.c_bool)]

CONNECT_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
SUBSCRIBE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int))
MESSAGE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(Message))
PUBLISH_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
lib.mosquitto_new.restype = ctypes.c_void_p
for f in ('mosquitto_int_option', 'mosquitto_username_pw_set', 'mosquitto_connect', 'mosquitto_subscribe', 'mosquitto_publish',
          'mosquitto_loop', 'mosquitto_disconnect', 'mosquitto_will_set', 'mosquitto_connect_callback_set',
          'mosquitto_subscribe_callback_set', 'mosquitto_message_callback_set', 'mosquitto_publish_callback_set'):
    getattr(lib, f).argtypes = None
lib.mosquitto_lib_init()
m = ctypes.c_void_p(lib.mosquitto_new(None, ctypes.c_bool(True), None))
lib.mosquitto_int_option(m, 1, version)  # MOSQ_OPT_PROTOCOL_VERSION
lib.mosquitto_username_pw_set(m, user.encode(), password.encode())
state = {'connack': None, 'subscribed': False, 'received': 0, 'published': 0}

def on_connect(_m, _o, rc):
    state['connack'] = rc
    print('CONNACK %d' % rc, flush=True)
    if rc == 0 and mode in ('sub', 'will'):
        lib.mosquitto_subscribe(m, None, topic.encode(), qos)

def on_subscribe(_m, _o, _mid, _n, _granted):
    state['subscribed'] = True
    print('READY', flush=True)

def on_message(_m, _o, msg):
    payload = ctypes.string_at(msg.contents.payload, msg.contents.payloadlen).decode()
    print('%s %s %d' % (msg.contents.topic.decode(), payload, msg.contents.qos), flush=True)
    state['received'] += 1

def on_publish(_m, _o, _mid):
    state['published'] += 1

callbacks = [CONNECT_CB(on_connect), SUBSCRIBE_CB(on_subscribe), MESSAGE_CB(on_message), PUBLISH_CB(on_publish)]
lib.mosquitto_connect_callback_set(m, callbacks[0])
lib.mosquitto_subscribe_callback_set(m, callbacks[1])
lib.mosquitto_message_callback_set(m, callbacks[2])
lib.mosquitto_publish_callback_set(m, callbacks[3])
if mode == 'will':
    payload = extra.encode()
    lib.mosquitto_will_set(m, (topic + '/will').encode(), len(payload), payload, 1, ctypes.c_bool(False))
rc = lib.mosquitto_connect(m, host.encode(), port, keepalive)
if rc != 0:
    print('CONNECT_FAILED %d' % rc, flush=True)
    sys.exit(2)

deadline = time.time() + 20
sent = False
while time.time() < deadline:
    if lib.mosquitto_loop(m, 100, 1) != 0:
        print('LOST', flush=True)
        sys.exit(3)
    if state['connack'] not in (None, 0):
        sys.exit(4)
    if mode == 'pub' and state['connack'] == 0 and not sent:
        payload = extra.encode()
        lib.mosquitto_publish(m, None, topic.encode(), len(payload), payload, qos, ctypes.c_bool(False))
        sent = True
    if mode == 'pub' and state['published'] >= 1:
        break
    if mode == 'sub' and state['received'] >= int(extra or '1'):
        break
lib.mosquitto_disconnect(m)
lib.mosquitto_loop(m, 100, 1)
sys.exit(0 if mode == 'will' or state['received'] or state['published'] else 5)
