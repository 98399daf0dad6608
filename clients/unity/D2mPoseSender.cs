// Unity -> d2m: send a skeleton as /d2m/pose (COCO-17) over OSC, with extOSC.
//
// Use it when the dancer exists in Unity: an avatar driven by a mocap rig, Kinect/ZED/
// Azure body tracking, or an animation to test with. Add this component and an extOSC
// OSCTransmitter (Remote Host = the d2m machine, Remote Port 9000 = d2m's --osc-in).
// Joints come from a Humanoid Animator (bone mapping below) or from 17 Transforms in
// COCO-17 order; they are projected through a Camera to image coordinates 0..1, y down,
// as d2m expects. Written against extOSC's public API; not compiled by d2m's tests.

using extOSC;
using UnityEngine;

namespace D2m
{
    public class D2mPoseSender : MonoBehaviour
    {
        [Header("OSC")]
        public OSCTransmitter Transmitter;

        [Header("Skeleton source (Animator, or 17 Transforms in COCO-17 order)")]
        public Animator Humanoid;
        public Transform[] Joints = new Transform[17];

        [Header("Projection")]
        public Camera View;                 // defaults to Camera.main
        [Tooltip("Person id sent to d2m (several dancers: one sender each, different ids)")]
        public int Person = 0;
        [Tooltip("Frames per second sent (d2m's motion rate is 60)")]
        public float Rate = 60f;

        // COCO-17 joint order, as d2m's coco17 layout expects it.
        public static readonly string[] Coco17 =
        {
            "nose", "left_eye", "right_eye", "left_ear", "right_ear",
            "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
            "left_wrist", "right_wrist", "left_hip", "right_hip",
            "left_knee", "right_knee", "left_ankle", "right_ankle",
        };

        // The Humanoid bone used for each COCO-17 joint (ears have no bone: sent as missing).
        static readonly HumanBodyBones?[] Bones =
        {
            HumanBodyBones.Head, HumanBodyBones.LeftEye, HumanBodyBones.RightEye, null, null,
            HumanBodyBones.LeftUpperArm, HumanBodyBones.RightUpperArm,
            HumanBodyBones.LeftLowerArm, HumanBodyBones.RightLowerArm,
            HumanBodyBones.LeftHand, HumanBodyBones.RightHand,
            HumanBodyBones.LeftUpperLeg, HumanBodyBones.RightUpperLeg,
            HumanBodyBones.LeftLowerLeg, HumanBodyBones.RightLowerLeg,
            HumanBodyBones.LeftFoot, HumanBodyBones.RightFoot,
        };

        float _next;

        void Update()
        {
            if (Transmitter == null || Time.time < _next) return;
            _next = Time.time + 1f / Mathf.Max(1f, Rate);
            var cam = View != null ? View : Camera.main;
            if (cam == null) return;

            // /d2m/pose person layout then 17 x (x, y, z, conf): the whole skeleton in one message.
            var message = new OSCMessage("/d2m/pose");
            message.AddValue(OSCValue.Int(Person));
            message.AddValue(OSCValue.String("coco17"));
            for (int i = 0; i < 17; i++)
            {
                var joint = JointTransform(i);
                float x = float.NaN, y = float.NaN, conf = 0f;
                if (joint != null && joint.gameObject.activeInHierarchy)
                {
                    var p = cam.WorldToViewportPoint(joint.position);
                    if (p.z > 0f)                       // in front of the camera
                    {
                        x = p.x;
                        y = 1f - p.y;                   // Unity's viewport is y up; d2m's y is down
                        conf = 1f;
                    }
                }
                message.AddValue(OSCValue.Float(x));
                message.AddValue(OSCValue.Float(y));
                message.AddValue(OSCValue.Float(0f));   // z unknown
                message.AddValue(OSCValue.Float(conf)); // 0 = missing joint (never an error)
            }
            Transmitter.Send(message);
        }

        Transform JointTransform(int i)
        {
            if (Joints != null && i < Joints.Length && Joints[i] != null) return Joints[i];
            if (Humanoid != null && Humanoid.isHuman && Bones[i].HasValue)
                return Humanoid.GetBoneTransform(Bones[i].Value);
            return null;
        }
    }
}
